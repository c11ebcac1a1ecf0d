// Reference output of @openzeppelin/merkle-tree for the Python compatibility test.
// stdin: JSON list of value lists [[[address, amountString], ...], ...] (one node start for all);
// stdout: JSON list of {root, proofs: [[hex, ...], ...], dump}, one per value list.
import { readFileSync } from "node:fs";
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

const valueLists = JSON.parse(readFileSync(0, "utf8"));
const results = valueLists.map((values) => {
  const tree = StandardMerkleTree.of(values, ["address", "uint256"]);
  return { root: tree.root, proofs: values.map((_, i) => tree.getProof(i)), dump: tree.dump() };
});
process.stdout.write(JSON.stringify(results));
