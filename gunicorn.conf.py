"""gunicorn settings and the worker life cycle.

Start: ``gunicorn -c gunicorn.conf.py main:app`` (the Procfile line). Every
value comes from the validated settings (the settings package), so a bad environment
stops the server here with one line, before anything forks.
"""
import logging
import math
import os
import secrets
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# prometheus-client's multiprocess mode: every worker writes its metrics to
# files in this directory and /metrics merges them. Set before the app loads.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bot-metrics-"))

from observability.logs import gunicorn_logconfig  # noqa: E402
from settings import load_settings_or_exit  # noqa: E402
from settings.telegram import MAX_WEBHOOK_CONNECTIONS  # noqa: E402

settings = load_settings_or_exit()
if settings.local_sandbox:
    # Local sandbox (no BOT_TOKEN, embedded SQLite; see local_sandbox/): the
    # webhook's secret is made up here, once, before the app loads, so the
    # master that registers it and the workers that check it agree.
    os.environ.setdefault("WEBHOOK_SECRET", secrets.token_urlsafe(32))
    settings = load_settings_or_exit()
log = logging.getLogger("lifecycle")

# Server socket
#   bind - where to listen; Railway routes $PORT on all interfaces. The local
#       sandbox is for this machine only: 127.0.0.1.
bind = f"{'127.0.0.1' if settings.local_sandbox else '0.0.0.0'}:{settings.port}"

# Worker processes
#   worker_class - gthread: each worker serves `threads` requests at once;
#       health probes get two threads of their own, so a monitor's probe
#       never queues behind webhook updates (worker_process/probe_lane.py).
#   workers / threads - WEB_CONCURRENCY / GUNICORN_THREADS; each worker's
#       database pool is sized from them (see settings.model.Settings.pool_size).
#   timeout - seconds the master waits for a worker's heartbeat before
#       killing it (SIGABRT, then worker_abort below). gthread beats from its
#       main loop, so a stuck request thread is the watchdog's job, not this.
#   graceful_timeout - seconds in-flight requests get after SIGTERM/SIGHUP.
#   keepalive - seconds to hold idle keep-alive connections (Telegram reuses them).
#   worker_connections - connections one worker holds open (idle keep-alive
#       ones wait in its poller, not in a thread). Telegram opens up to 100
#       (set-webhook's default max_connections): together the workers hold
#       them all, and no worker holds much more than its share, so a burst
#       of new connections spreads over the workers instead of piling onto
#       whichever accepted first.
#   max_requests / max_requests_jitter - recycle workers now and then,
#       at different times, to bound any slow leak.
worker_class = "worker_process.probe_lane.ProbeLaneWorker"
workers = settings.web_concurrency
threads = settings.gunicorn_threads
timeout = settings.gunicorn_timeout
graceful_timeout = 20
keepalive = 30
worker_connections = math.ceil(MAX_WEBHOOK_CONNECTIONS / settings.web_concurrency) + settings.gunicorn_threads
max_requests = settings.max_requests
max_requests_jitter = max(0, settings.max_requests // 10)

# Application loading
#   preload_app - build the app once in the master: configuration and
#       migrations fail before any worker forks. Workers drop the inherited
#       pool connections in post_worker_init.
preload_app = True

# Control socket (gunicorn 25.1+, for `gunicornc`)
#   control_socket - one per instance, or two gunicorns on one machine
#       (tests, an old and a new deployment) would take over each other's.
#       The path is GUNICORN_CONTROL_SOCKET, else $TMPDIR/gunicorn-bot-$PORT.ctl
#       (settings/loading.py), logged at start; `flask --app main stacks` finds
#       the workers through it.
control_socket = settings.control_socket

# Logging
#   accesslog - off: one line per webhook call is noise at this rate.
#   logconfig_dict - gunicorn's own lines through our handler: LOG_FORMAT=json
#       (Railway's default) is one JSON object per line on stdout, text goes
#       to stderr; the bot token is scrubbed from both (observability/logs.py).
#   logger_class - gunicorn's logger, minus the per-request access-log work
#       that logconfig_dict would otherwise switch on.
accesslog = None
logger_class = "observability.logs.GunicornLogger"
errorlog = "-"
loglevel = settings.log_level.lower()
logconfig_dict = gunicorn_logconfig(settings.log_level, settings.log_format, settings.log_secrets)

_worker_started = {}
_sandbox = {}


def on_starting(server):
    """Master, before forking: say what we are about to open, migrate, then start the sandbox's Telegram."""
    from database import migrations
    from observability import metrics

    log.info("starting: %s; control socket %s (gunicornc -s %s); log format %s",
             settings.describe_pool(), settings.control_socket, settings.control_socket, settings.log_format)
    log.info("%s", settings.describe_database())
    for warning in settings.start_warnings():
        log.warning("CHECK YOUR SETTINGS: %s", warning)
    metrics.clear(settings.metrics_dir)  # counts from an earlier run would be merged in
    try:
        migrations.upgrade_to_head(server.app.wsgi(), wait_seconds=settings.db_wait_at_start_seconds)
    except migrations.DatabaseUnreachable as error:
        log.critical("not starting: %s", error)
        raise SystemExit(3) from None
    if settings.is_local:
        _start_local_mode()


def _start_local_mode():
    """No DATABASE_URL: without a BOT_TOKEN, the sandbox and its Telegram; with one, how to run for real."""
    from local_sandbox import launcher

    if not settings.local_sandbox:
        log.warning(launcher.REAL_BOT_HINT)
        return
    try:
        _sandbox["telegram"] = launcher.start(settings)
    except launcher.SandboxError as error:
        print(error, file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def when_ready(server):
    """Master, listening: in the sandbox, say what to open."""
    from local_sandbox import launcher

    if settings.local_sandbox:
        print(launcher.ready_banner(settings), flush=True)


def on_exit(server):
    """Master, on its way out: stop the sandbox's Telegram."""
    telegram = _sandbox.pop("telegram", None)
    if telegram is not None:
        telegram.stop()


def post_worker_init(worker):
    """Worker, after fork: own pool, diagnostics, background threads."""
    from observability import watchdog
    from worker_process import lifecycle

    _worker_started[os.getpid()] = time.monotonic()
    app = worker.wsgi
    lifecycle.after_fork(app)
    # gunicorn resets signal handlers after post_fork, so register here.
    # SIGUSR1 is gunicorn's log reopen; SIGUSR2 to a worker logs every thread's
    # stack with the update it handles (SIGUSR2 to the master re-execs gunicorn).
    watchdog.dump_stacks_on(signal.SIGUSR2)
    _release_connections_on_sigterm(app)
    lifecycle.start_background(app)


def _release_connections_on_sigterm(app):
    """Chain to gunicorn's SIGTERM handler (stop accepting, finish in-flight requests)
    and hand idle pool connections back at once, so a reload's old and new
    workers do not hold two pools' worth of connections."""
    from worker_process import lifecycle

    gunicorn_handler = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        gunicorn_handler(signum, frame)
        lifecycle.release_early(app)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.siginterrupt(signal.SIGTERM, False)


def worker_abort(worker):
    """Worker, on SIGABRT (the master's timeout kill): leave the evidence."""
    from observability import watchdog

    age = time.monotonic() - _worker_started.get(os.getpid(), time.monotonic())
    log.error("worker %s aborted after %.1fs alive; stacks of all threads follow\n%s",
              os.getpid(), age, watchdog.format_all_stacks())


def child_exit(server, worker):
    """Master, after a worker is gone: stop counting its live gauges, and free
    the outbox jobs it held at once rather than after their leases."""
    from bot_outbox import leases
    from observability import metrics

    metrics.worker_exited(settings.metrics_dir, worker.pid)
    leases.release_dead_worker(server.app.wsgi(), worker.pid)


def worker_exit(server, worker):
    """Worker, on its way out: stop background threads, close the pool."""
    from worker_process import lifecycle

    app = getattr(worker, "wsgi", None)
    if app is not None:  # a worker that failed to boot has nothing to close
        lifecycle.shutdown(app)
