// Offline, reproducible compile of contracts/src/*.sol with the pinned solcjs and OpenZeppelin.
//
// Usage: node compile.mjs [--out DIR]   (default DIR: ../rewards/chain/artifacts)
//
// Writes one <Contract>.json per contract (ABI, creation and runtime bytecode, compiler version,
// settings and a source hash). The Python engine deploys from these committed artifacts, so the
// Django side never needs node; tests recompile into a temporary DIR and compare byte-for-byte.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const here = dirname(fileURLToPath(import.meta.url));
const outFlag = process.argv.indexOf("--out");
const outDir = outFlag >= 0 ? resolve(process.argv[outFlag + 1]) : join(here, "..", "rewards", "chain", "artifacts");

// prague, not solc 0.8.37's default osaka: py-evm (the in-process chain) cannot run osaka, and
// OpenZeppelin 5.7 needs cancun or later for mcopy.
const settings = {
  evmVersion: "prague",
  optimizer: { enabled: true, runs: 200 },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};

const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const loaded = {};

const sources = {};
for (const name of readdirSync(join(here, "src")).filter((f) => f.endsWith(".sol")).sort()) {
  const path = `src/${name}`;
  const content = readFileSync(join(here, path), "utf8");
  sources[path] = { content };
  loaded[path] = content;
}

function findImports(path) {
  try {
    const content = readFileSync(require.resolve(path), "utf8");
    loaded[path] = content;
    return { contents: content };
  } catch (err) {
    return { error: `cannot resolve ${path}: ${err.message}` };
  }
}

const input = { language: "Solidity", sources, settings };
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

// Every source unit that went into the build, including OpenZeppelin's, so a changed dependency
// shows up as a changed hash even when our own files did not change.
const sourceHashes = Object.fromEntries(Object.keys(loaded).sort().map((p) => [p, sha256(loaded[p])]));
const sourceHash = sha256(Object.entries(sourceHashes).map(([p, h]) => `${p}:${h}\n`).join(""));

mkdirSync(outDir, { recursive: true });
for (const path of Object.keys(sources)) {
  for (const [contractName, contract] of Object.entries(output.contracts[path])) {
    const artifact = {
      contractName,
      sourceName: path,
      abi: contract.abi,
      bytecode: `0x${contract.evm.bytecode.object}`,
      deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
      compiler: { name: "solcjs", version: solc.version(), settings: { evmVersion: settings.evmVersion, optimizer: settings.optimizer } },
      sourceHash,
      sources: sourceHashes,
    };
    writeFileSync(join(outDir, `${contractName}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
    console.log(`${contractName}: ${contract.evm.deployedBytecode.object.length / 2} bytes runtime -> ${outDir}`);
  }
}
