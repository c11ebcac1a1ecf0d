"""The `lineage` command: the SDK's verbs from a shell.

    lineage login --url http://127.0.0.1:8000
    lineage datanets upload support-tickets rows.csv
    lineage fine-tunes launch --datanet support-tickets:1 --set epochs=2 --wait
    lineage models price support-intents-1a2b3c4d 0.05

Results go to stdout (`--json` for the API's own JSON), progress bars and errors to stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__, config
from ._cli_output import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    contribution_line,
    earnings_lines,
    emit_json,
    fine_tune_line,
    model_lines,
    report_error,
    version_line,
)
from .client import Lineage
from .errors import AuthenticationError, BadRequestError, LineageError, WaitInterrupted
from .fine_tunes import DEFAULT_BASE_MODEL, FineTuneSpec

Handler = Callable[[Lineage, argparse.Namespace], object]


def _client(args: argparse.Namespace) -> Lineage:
    return Lineage(args.url, args.api_key, timeout=args.timeout, config_file=args.config)


def _out(args: argparse.Namespace, value, lines: list[str] | str) -> None:
    if args.json:
        emit_json(value)
    else:
        print("\n".join(lines) if isinstance(lines, list) else lines)


# --- login ---------------------------------------------------------------------------------------------------

def cmd_login(args: argparse.Namespace) -> int:
    """Check a key against the server, then save the URL and key for later commands."""
    settings_url = config.normalise_url(args.url or os.environ.get("LINEAGE_URL") or config.DEFAULT_URL)
    key = args.key
    if not key:
        key = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass(
            f"API key for {settings_url} (create one at {settings_url}/account/keys/): ")
    if not key:
        print("error: No API key given: pass --key, or paste it when asked.", file=sys.stderr)
        return EXIT_USAGE
    with Lineage(settings_url, key, timeout=args.timeout, config_file=args.config) as client:
        try:
            me = client.me()
        except AuthenticationError as exc:  # nothing is saved for a key the server refuses
            return report_error(exc, command="login", url=settings_url, key_source="--key")
    path = config.save(url=settings_url, api_key=key, path=args.config)
    if args.json:
        emit_json({"url": settings_url, "config": str(path), **me.raw})
    else:
        print(f"Logged in to {settings_url} as {me.display_name} (scopes: {', '.join(me.scopes)}). Saved to {path}.")
    return EXIT_OK


# --- datanets ------------------------------------------------------------------------------------------------

def cmd_datanets_list(client: Lineage, args):
    datanets = client.datanets.list(query=args.query or "")
    lines = [f"{d.slug:<32} {d.task_type:<20} {d.accepted_rows:>7} rows  {d.name}" for d in datanets]
    _out(args, datanets, lines or "No Datanets match.")


def cmd_datanets_create(client: Lineage, args):
    labels = [label.strip() for label in (args.labels or "").split(",") if label.strip()]
    extra = {"summary": args.summary} if args.summary else {}
    if args.private:
        extra["visibility"] = "private"
    datanet = client.datanets.create(args.name, task_type=args.task, labels=labels, slug=args.slug, **extra)
    _out(args, datanet, f"Created Datanet {datanet.slug} ({datanet.task_type}, {datanet.visibility}). Upload rows with "
                        f"`lineage datanets upload {datanet.slug} FILE`.")


def cmd_datanets_upload(client: Lineage, args):
    contribution = client.datanets.upload(args.slug, args.file, progress=not args.quiet, wait=not args.no_wait,
                                          timeout=args.wait_timeout)
    lines = [contribution_line(contribution)]
    if contribution.counts.get("rejected"):
        lines.append(f"Some rows were refused: `lineage datanets errors {args.slug} {contribution.id}` lists them.")
    if not contribution.finished:
        lines.append(f"`lineage datanets wait {args.slug} {contribution.id}` waits for the validation.")
    _out(args, contribution, lines)


def cmd_datanets_wait(client: Lineage, args):
    contribution = client.datanets.wait(args.slug, args.contribution, progress=not args.quiet,
                                        timeout=args.wait_timeout)
    _out(args, contribution, contribution_line(contribution))


def cmd_datanets_errors(client: Lineage, args):
    errors = list(client.datanets.row_errors(args.slug, args.contribution))
    lines = [f"row {e.row} (line {e.line}): {e.code}: {e.message}" for e in errors] or ["No rows were refused."]
    if args.csv:
        download = client.datanets.download_errors_csv(args.slug, args.contribution, args.csv)
        lines.append(f"Wrote the refused rows to {download.path} ({download.size} bytes).")
    _out(args, errors, lines)


def cmd_datanets_publish(client: Lineage, args):
    version = client.datanets.publish(args.slug, notes=args.notes or "")
    _out(args, version, version_line(version))


def cmd_datanets_download(client: Lineage, args):
    download = client.datanets.download(args.slug, args.version, args.output, format=args.format,
                                        progress=not args.quiet)
    _out(args, download, f"Wrote {download.path} ({download.size} bytes, SHA-256 {download.sha256}); "
                         f"checked: {download.verified}.")


# --- fine-tunes ----------------------------------------------------------------------------------------------

def _settings(pairs: Sequence[str]) -> dict:
    settings = {}
    for pair in pairs or ():
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise BadRequestError(f"“{pair}” is not a setting: write --set name=value, e.g. --set epochs=3.")
        name = name.strip()
        if name == "lora_target_modules":
            settings[name] = [m.strip() for m in text.split(",") if m.strip()]
            continue
        try:
            settings[name] = json.loads(text)
        except ValueError:
            settings[name] = text
    return settings


def cmd_fine_tunes_launch(client: Lineage, args):
    spec = FineTuneSpec.from_file(args.spec) if args.spec else None
    if spec is None and not args.datanet:
        raise BadRequestError("Name the Datanet versions to train on: --datanet slug:number (or --spec FILE).")
    if spec is None:
        spec = FineTuneSpec(datanet_versions=[], base_model=DEFAULT_BASE_MODEL)
    spec.datanet_versions = list(args.datanet or []) or spec.datanet_versions
    spec.base_model = args.base or spec.base_model
    spec.name = args.name or spec.name
    spec.hyperparameters = {**spec.hyperparameters, **_settings(args.set)}
    job = client.fine_tunes.launch(spec, wait=args.wait, progress=not args.quiet, timeout=args.wait_timeout)
    follow = "" if args.wait else f" `lineage fine-tunes wait {job.id}` follows it."
    _out(args, job, fine_tune_line(job) + follow)


def cmd_fine_tunes_list(client: Lineage, args):
    jobs = client.fine_tunes.list(state=args.state or "")
    _out(args, jobs, [fine_tune_line(j) for j in jobs] or "No fine-tunes.")


def cmd_fine_tunes_get(client: Lineage, args):
    job = client.fine_tunes.get(args.id)
    _out(args, job, [fine_tune_line(job), *[f"  {line}" for line in job.log[-10:]]])


def cmd_fine_tunes_wait(client: Lineage, args):
    job = client.fine_tunes.wait(args.id, progress=not args.quiet, timeout=args.wait_timeout)
    _out(args, job, fine_tune_line(job) + f" `lineage models get {job.model_version}` shows its card.")


def cmd_fine_tunes_cancel(client: Lineage, args):
    job = client.fine_tunes.cancel(args.id)
    note = " It stops at its next step and keeps its checkpoint." if job.state == "running" else ""
    _out(args, job, fine_tune_line(job) + note + f" `lineage fine-tunes resume {job.id}` continues it.")


def cmd_fine_tunes_resume(client: Lineage, args):
    job = client.fine_tunes.resume(args.id, wait=args.wait, progress=not args.quiet, timeout=args.wait_timeout)
    _out(args, job, fine_tune_line(job))


# --- models, receipts, earnings, chat ------------------------------------------------------------------------

def cmd_models_list(client: Lineage, args):
    models = client.models.list(mine=args.mine)
    _out(args, models, [model_lines(m)[0] for m in models] or "No models.")


def cmd_models_get(client: Lineage, args):
    model = client.models.get(args.slug)
    _out(args, model, model_lines(model))


def cmd_models_deploy(client: Lineage, args):
    model = client.models.deploy(args.slug)
    _out(args, model, f"Deployed {model.slug}: it answers on {client.base_url}/v1 as model “{model.slug}”.")


def cmd_models_undeploy(client: Lineage, args):
    model = client.models.undeploy(args.slug)
    _out(args, model, f"Undeployed {model.slug}: it no longer answers.")


def cmd_models_price(client: Lineage, args):
    if args.base_units:
        if not args.price.strip().isdigit():
            raise BadRequestError(f"“{args.price}” is not a whole number of base units (1 OPEN = 10^18); drop "
                                  "--base-units to give OPEN, e.g. 0.05.")
        model = client.models.set_price(args.slug, base_units=int(args.price))
    else:
        model = client.models.set_price(args.slug, args.price)
    _out(args, model, f"{model.slug} now costs {model.price_open} OPEN per answer ({model.price_per_inference} base "
                      "units).")


def cmd_models_download(client: Lineage, args):
    download = client.models.download_adapter(args.slug, args.output, progress=not args.quiet)
    _out(args, download, f"Wrote {download.path} ({download.size} bytes, SHA-256 {download.sha256}); checked: "
                         f"{download.verified}.")


def cmd_receipts_get(client: Lineage, args):
    receipt = client.receipts.get(args.id)
    lines = [f"Receipt {receipt.receipt_id} for model {receipt.model} ({receipt.method}), {receipt.url}"]
    for contributor, ppm in sorted(receipt.contributor_shares_ppm.items(), key=lambda kv: -kv[1]):
        name = receipt.contributor_names.get(contributor, contributor)
        lines.append(f"  {name}: {ppm / 10_000:.2f}% of the credit")
    if receipt.empty_reason:
        lines.append(f"  No contributor shares: {receipt.empty_reason}")
    _out(args, receipt, lines)


def cmd_earnings(client: Lineage, args):
    earnings = client.earnings.list()
    _out(args, earnings, earnings_lines(earnings))


def cmd_chat(client: Lineage, args):
    answer = client.chat(args.model, args.message)
    _out(args, answer, [answer.text, f"(receipt {answer.receipt_id}, fee {answer.fee} base units; "
                                     f"`lineage receipts get {answer.receipt_id}` shows the attribution)"])


# --- the parser ----------------------------------------------------------------------------------------------

def _common(*, top: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name. After it they default to SUPPRESS, so an
    option given before the command name is not overwritten by the subcommand's unset one."""

    def default(value):
        return {"default": value if top else argparse.SUPPRESS}

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--url", help="server URL (else LINEAGE_URL, else the saved login)", **default(None))
    parser.add_argument("--api-key", help="API key (else LINEAGE_API_KEY, else the saved login)", **default(None))
    parser.add_argument("--config", help="config file (else LINEAGE_CONFIG, else ~/.config/lineage/config.toml)",
                        **default(None))
    parser.add_argument("--timeout", type=float, help="seconds per request (60)", **default(60.0))
    parser.add_argument("--json", action="store_true", help="print the API's JSON", **default(False))
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars", **default(False))
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lineage", parents=[_common(top=True)], epilog=EXIT_CODES_HELP,
                                     description="Datanets, fine-tunes, models, receipts and earnings on a Lineage "
                                                 "server.")
    parser.add_argument("--version", action="version", version=f"lineage-client {__version__}")
    groups = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common(top=False)

    def command(subparsers, name: str, handler, help_text: str):
        sub = subparsers.add_parser(name, parents=[common], help=help_text, description=help_text,
                                    epilog=EXIT_CODES_HELP)
        sub.set_defaults(handler=handler)
        return sub

    def waits(sub, what: str):
        sub.add_argument("--wait-timeout", type=float, default=None, help=f"give up waiting for {what} after "
                                                                          "this many seconds")

    login = command(groups, "login", None, "check an API key and save it with the server's URL")
    login.add_argument("--key", help="the API key (else read from stdin, or asked for)")

    datanets = groups.add_parser("datanets", help="create, upload to, publish and download Datanets")
    dn = datanets.add_subparsers(dest="verb", metavar="VERB", required=True)
    command(dn, "list", cmd_datanets_list, "the Datanets you can see").add_argument("--query", help="text to find")
    create = command(dn, "create", cmd_datanets_create, "create a Datanet you own")
    create.add_argument("name")
    create.add_argument("--task", required=True, choices=["text-classification", "instruction", "text"])
    create.add_argument("--labels", help="comma-separated labels (text-classification)")
    create.add_argument("--slug")
    create.add_argument("--summary")
    create.add_argument("--private", action="store_true", help="members only")
    upload = command(dn, "upload", cmd_datanets_upload, "upload a file of rows and wait for its validation")
    upload.add_argument("slug")
    upload.add_argument("file")
    upload.add_argument("--no-wait", action="store_true", help="return once uploaded")
    waits(upload, "the validation")
    wait = command(dn, "wait", cmd_datanets_wait, "wait for a contribution's validation")
    wait.add_argument("slug")
    wait.add_argument("contribution", type=int)
    waits(wait, "the validation")
    errors = command(dn, "errors", cmd_datanets_errors, "the rows a contribution's validation refused")
    errors.add_argument("slug")
    errors.add_argument("contribution", type=int)
    errors.add_argument("--csv", metavar="PATH", help="also write them, with their content, as CSV")
    publish = command(dn, "publish", cmd_datanets_publish, "publish the accepted rows as a new version")
    publish.add_argument("slug")
    publish.add_argument("--notes")
    download = command(dn, "download", cmd_datanets_download, "download a version, checked against its hashes")
    download.add_argument("slug")
    download.add_argument("version", type=int)
    download.add_argument("-o", "--output", help="file or directory (default: SLUG-vN.FORMAT here)")
    download.add_argument("--format", choices=["jsonl", "parquet", "csv"], default="jsonl")

    tunes = groups.add_parser("fine-tunes", help="launch, follow, cancel and resume fine-tunes")
    ft = tunes.add_subparsers(dest="verb", metavar="VERB", required=True)
    launch = command(ft, "launch", cmd_fine_tunes_launch, "launch a fine-tune")
    launch.add_argument("--spec", help="a TOML or JSON spec file (flags override it)")
    launch.add_argument("--datanet", action="append", metavar="SLUG:N", help="a Datanet version (repeatable)")
    launch.add_argument("--base", help=f"base model slug ({DEFAULT_BASE_MODEL})")
    launch.add_argument("--name")
    launch.add_argument("--set", action="append", metavar="NAME=VALUE", help="a hyperparameter (repeatable)")
    launch.add_argument("--wait", action="store_true", help="follow it to the end")
    waits(launch, "the fine-tune")
    command(ft, "list", cmd_fine_tunes_list, "your fine-tunes").add_argument("--state")
    for name, handler, text in (("get", cmd_fine_tunes_get, "a fine-tune's state and log"),
                                ("wait", cmd_fine_tunes_wait, "follow a fine-tune to the end"),
                                ("cancel", cmd_fine_tunes_cancel, "cancel a queued or running fine-tune"),
                                ("resume", cmd_fine_tunes_resume, "resume a cancelled or failed fine-tune")):
        sub = command(ft, name, handler, text)
        sub.add_argument("id", type=int)
        if name in ("wait", "resume"):
            waits(sub, "the fine-tune")
        if name == "resume":
            sub.add_argument("--wait", action="store_true", help="follow it to the end")

    models = groups.add_parser("models", help="read, deploy, price and download models")
    md = models.add_subparsers(dest="verb", metavar="VERB", required=True)
    command(md, "list", cmd_models_list, "models you can see").add_argument("--mine", action="store_true")
    for name, handler, text in (("get", cmd_models_get, "a model's card and lineage"),
                                ("deploy", cmd_models_deploy, "serve a model on /v1"),
                                ("undeploy", cmd_models_undeploy, "stop serving a model")):
        command(md, name, handler, text).add_argument("slug")
    price = command(md, "price", cmd_models_price, "set the price per answer, in OPEN (e.g. 0.05)")
    price.add_argument("slug")
    price.add_argument("price", help="OPEN per answer, e.g. 0.05 (0 is free)")
    price.add_argument("--base-units", action="store_true", help="the price is in base units (1 OPEN = 10^18)")
    adapter = command(md, "download", cmd_models_download, "download a model's adapter, checked against its hash")
    adapter.add_argument("slug")
    adapter.add_argument("-o", "--output", help="file or directory (default: SLUG-adapter.zip here)")

    receipts = groups.add_parser("receipts", help="attribution receipts")
    rc = receipts.add_subparsers(dest="verb", metavar="VERB", required=True)
    command(rc, "get", cmd_receipts_get, "a receipt: who an answer is attributed to").add_argument("id")
    command(groups, "earnings", cmd_earnings, "your earnings")
    chat = command(groups, "chat", cmd_chat, "ask a deployed model one question")
    chat.add_argument("model")
    chat.add_argument("message")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "login":
            return cmd_login(args)
        with _client(args) as client:
            args.handler(client, args)
        return EXIT_OK
    except WaitInterrupted as stop:
        print(f"\n{stop.message}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\nStopped.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except LineageError as exc:
        url = args.url or "the server"
        key_source = "--api-key" if args.api_key else "LINEAGE_API_KEY or the saved login"
        try:
            resolved = config.resolve(args.url, args.api_key, config_file=args.config)
            url, key_source = resolved.url, ("--api-key" if args.api_key else resolved.key_source)
        except LineageError:
            pass
        ident = str(getattr(args, "id", "") or getattr(args, "slug", ""))
        return report_error(exc, command=args.command, url=url, key_source=key_source, ident=ident)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
