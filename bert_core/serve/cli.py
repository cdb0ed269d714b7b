"""``bert serve MODEL --task TASK [--backend torch|tf|flax] [--host 127.0.0.1] [--port 8080] [limits]``.

Loads the task pipeline once and serves it over HTTP with uvicorn (one process, one model, one inference thread).
Routes and request shapes: docs/serve.md. Prints ``bert serve: <task> on <backend> at http://HOST:PORT`` on stderr
once listening (``--port 0`` picks a free port and prints it). Stops on Ctrl-C / SIGTERM.

Exit status: 0 after a clean stop, 2 for a usage error (bad model directory, unknown task, port in use, a limit out
of range): one line on stderr, no traceback; 3 for an internal error.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import List, Optional

from ..compiled import COMPILE_HELP

DEFAULTS = dict(
    max_batch_tokens=16384, max_wait_ms=2.0, max_client_batch_size=32, max_concurrent_requests=512, call_cost_tokens=64
)


class UsageError(Exception):
    """Reported in one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bert serve", description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.error = lambda message: _usage_exit(message)  # type: ignore[method-assign]
    p.add_argument("model", help="checkpoint directory or hub id")
    p.add_argument(
        "--task",
        required=True,
        help="sentence-embedding, feature-extraction (/embed); text-classification (/predict, /rerank); "
        "token-classification, question-answering, fill-mask, zero-shot-classification (/predict)",
    )
    p.add_argument("--backend", default=None, help="torch, tf or flax (default: the first installed)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: a free port, printed)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, gpu ... (default: the backend's default)")
    p.add_argument("--bf16", action="store_true", help="run the model in bfloat16")
    p.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=DEFAULTS["max_batch_tokens"],
        help="padded tokens (rows x longest row) per model call (default 16384)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=DEFAULTS["max_wait_ms"],
        help="how long a request waits for others to share its model call (default 2; 0: only requests already "
        "queued join)",
    )
    p.add_argument(
        "--max-batch-requests",
        type=int,
        default=None,
        help="requests per model call group (default: no limit; 1 turns dynamic batching off)",
    )
    p.add_argument(
        "--call-cost-tokens",
        type=int,
        default=DEFAULTS["call_cost_tokens"],
        help="the fixed cost of a model call in padded tokens: rows are cut into the calls of least calls x cost + "
        "padded tokens (default 64)",
    )
    p.add_argument(
        "--max-client-batch-size",
        type=int,
        default=DEFAULTS["max_client_batch_size"],
        help="inputs one request may send (default 32)",
    )
    p.add_argument(
        "--max-concurrent-requests",
        type=int,
        default=DEFAULTS["max_concurrent_requests"],
        help="queued requests before 429 (default 512)",
    )
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="request body limit (default 1 MiB)")
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    return p


def _usage_exit(message: str) -> None:
    print(f"bert serve: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; UsageError when the address is taken or invalid."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be in [0, 65535]; got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, IndexError) as err:
        raise UsageError(f"cannot resolve --host {host!r}: {err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    from ..backends import BackendUnavailable
    from ..checkpoint import CheckpointError
    from ..pipelines import PipelineError, pipeline, task_class
    from .server import ServeConfig

    sock = None
    try:
        try:
            import prometheus_client  # noqa: F401
            import starlette  # noqa: F401
            import uvicorn
        except ImportError as err:
            raise UsageError(f"{err.name} is missing: pip install 'multi-bert[serve]'") from None
        cls = task_class(args.task)
        config = ServeConfig(
            model_id=str(args.model),
            max_batch_tokens=args.max_batch_tokens,
            max_wait_ms=args.max_wait_ms,
            max_batch_requests=args.max_batch_requests,
            max_client_batch_size=args.max_client_batch_size,
            max_concurrent_requests=args.max_concurrent_requests,
            max_body_bytes=args.max_body_bytes,
            call_cost_tokens=args.call_cost_tokens,
        )
        config.check()
        sock = bind(args.host, args.port)  # before the model loads: a taken port fails in a second, not a minute
        pipe = pipeline(
            cls.task,
            args.model,
            backend=args.backend,
            bf16=args.bf16,
            device=args.device,
            compile=args.compile,
            progress=False,
        )
        from .app import create_app

        app = create_app(pipe, config)
    except (UsageError, PipelineError, BackendUnavailable, CheckpointError, ValueError, OSError) as err:
        if sock is not None:
            sock.close()
        print(f"bert serve: error: {err}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"bert serve: {pipe.task} on {pipe.backend} at http://{shown}:{port}", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, access_log=False, lifespan="on"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """``bert serve ...`` (``argv`` with or without the leading ``serve``)."""
    from ..cli import subcommand_argv

    argv = subcommand_argv("serve", argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help is 0, a usage error 2
        return int(exit_.code or 0)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 0
    except Exception as err:  # noqa: BLE001 - the documented exit status of an internal error
        print(f"bert serve: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
