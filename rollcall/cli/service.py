"""``rollcall serve``, ``rollcall jobs ...`` and ``rollcall zoom check``: the Zoom service,
its recording jobs and its Zoom account.

``register(sub)`` adds the commands to the CLI's argparse subparsers; each
command has the CLI's ``(args, config, console) -> exit code`` signature.
"""

from __future__ import annotations

import argparse

from rich.table import Table
from rich.text import Text

from rollcall.cli.args import (
    command,
    command_group,
    count,
    job_ref,
    processes,
    record_id,
    tcp_port,
)
from rollcall.cli.common import cell, open_db, say


def cmd_serve(args, config, console) -> int:
    import asyncio

    from rollcall.service.serve import serve

    host = args.host or config.server.host
    port = args.port or config.server.port
    asyncio.run(serve(config, host, port))
    return 0


def cmd_worker(args, config, console) -> int:
    from rollcall.cli.common import CliError

    if not config.cluster.enabled:
        raise CliError(
            "rollcall worker needs the broker: set [cluster] broker_url and secret "
            "(ROLLCALL_CLUSTER_BROKER_URL, ROLLCALL_CLUSTER_SECRET), the same as rollcall serve's"
        )
    from rollcall.cluster.remote import run_worker

    return run_worker(config, args.concurrency, args.name)


def job_worker(job) -> str:
    """Who has (or had) the job: the cluster worker that analyses it, else the
    coordinator's worker that holds its lease."""
    return job.payload.get("worker") or (job.lease_owner if job.state in _RUNNING else "") or ""


_RUNNING = ("downloading", "analyzing")


def _job_table(rows) -> Table:
    table = Table(
        "id",
        "state",
        "worker",
        "course",
        "topic",
        "meeting uuid",
        "attempts",
        "next attempt",
        "error",
    )
    for j in rows:
        table.add_row(
            str(j.id),
            cell(j.state),
            cell(job_worker(j)),
            cell(j.course_id),
            cell(j.topic),
            cell(j.meeting_uuid),
            f"{j.attempts}/{j.max_attempts}",
            cell(j.next_attempt_at),
            cell((j.error or "")[:80]),
        )
    return table


def cmd_jobs_list(args, config, console) -> int:
    from rollcall.store import jobs

    console.print(_job_table(jobs.list_jobs(open_db(config), args.state, args.limit)))
    return 0


def cmd_jobs_show(args, config, console) -> int:
    from rollcall.store import jobs

    db = open_db(config)
    job = jobs.get(db, args.job)
    console.print(_job_table([job]))
    if job.error:
        console.print(say("error: ", job.error))
    for event in jobs.events(db, job.id):
        console.print(say(f"{event.at}  {event.state:<12} {event.message or ''}"))
    return 0


def cmd_jobs_retry(args, config, console) -> int:
    from rollcall.store import jobs

    job = jobs.retry(open_db(config), args.job)
    console.print(f"job {job.id} queued again")
    return 0


def cmd_jobs_cancel(args, config, console) -> int:
    from rollcall.store import jobs

    job = jobs.cancel(open_db(config), args.job, args.reason)
    console.print(f"job {job.id} cancelled")
    return 0


def cmd_zoom_check(args, config, console) -> int:
    from rollcall.bot.zoom_client import ZoomClient
    from rollcall.config import zoom_credentials_missing
    from rollcall.service.serve import disabled_parts

    for part, reason in disabled_parts(config).items():
        console.print(Text(f"disabled: {part}: {reason}"))
    if zoom_credentials_missing(config):
        return 1
    report = ZoomClient.from_config(config.zoom).check_scopes()
    for check in report.checks:
        mark = "ok" if check.ok else ("MISSING" if check.required else "optional")
        console.print(
            Text(f"{mark:<8} {check.capability}: needs one of {', '.join(check.accepted)}")
        )
    if not report.ok:
        console.print(
            Text(
                "add the missing scopes to the Server-to-Server OAuth app in the Zoom "
                "App Marketplace, then run this again"
            )
        )
        return 1
    console.print("Zoom credentials and scopes are fine")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` and the ``jobs`` and ``zoom`` command groups to the CLI's subparsers."""
    p = sub.add_parser("serve", help="run the Zoom service (webhook, polling, workers)")
    p.set_defaults(func=cmd_serve)
    p.add_argument("--host", help="listen address (default: [server] host)")
    p.add_argument("--port", type=tcp_port, help="listen port (default: [server] port)")

    p = sub.add_parser(
        "worker", help="analyse recordings for rollcall serve on this machine ([cluster])"
    )
    p.set_defaults(func=cmd_worker)
    p.add_argument(
        "--concurrency", type=processes, default=1, help="recordings analysed at once (processes)"
    )
    p.add_argument("--name", help="this worker's name in /healthz and jobs list (default host:pid)")

    job_cmds = command_group(sub, "jobs", "the service's recording jobs")
    p = command(job_cmds, "list", cmd_jobs_list, "list jobs, newest first")
    p.add_argument("--state")
    p.add_argument("--limit", type=count, default=50)
    p = command(job_cmds, "show", cmd_jobs_show, "one job with its history and error")
    p.add_argument("job", type=job_ref)
    p = command(job_cmds, "retry", cmd_jobs_retry, "queue a failed or cancelled job again")
    p.add_argument("job", type=record_id)
    p = command(job_cmds, "cancel", cmd_jobs_cancel, "cancel a job")
    p.add_argument("job", type=job_ref)
    p.add_argument("--reason", default="cancelled by an admin")

    zoom = command_group(sub, "zoom", "Zoom account")
    command(zoom, "check", cmd_zoom_check, "verify Zoom credentials and scopes")
