"""gunicorn settings and the worker life cycle.

Start: ``gunicorn -c gunicorn.conf.py main:app`` (the Procfile line). Every
value comes from the validated settings (the settings package), so a bad environment
stops the server here with one line, before anything forks.
"""
import faulthandler
import logging
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# prometheus-client's multiprocess mode: every worker writes its metrics to
# files in this directory and /metrics merges them. Set before the app loads.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bot-metrics-"))

from settings import load_settings_or_exit  # noqa: E402

settings = load_settings_or_exit()
log = logging.getLogger("lifecycle")

# Server socket
#   bind - where to listen; Railway routes $PORT on all interfaces.
bind = f"0.0.0.0:{settings.port}"

# Worker processes
#   worker_class - gthread: each worker serves `threads` requests at once.
#   workers / threads - WEB_CONCURRENCY / GUNICORN_THREADS; each worker's
#       database pool is sized from them (see config.Settings.pool_size).
#   timeout - seconds the master waits for a worker's heartbeat before
#       killing it (SIGABRT, then worker_abort below). gthread beats from its
#       main loop, so a stuck request thread is the watchdog's job, not this.
#   graceful_timeout - seconds in-flight requests get after SIGTERM/SIGHUP.
#   keepalive - seconds to hold idle keep-alive connections (Telegram reuses them).
#   worker_connections - keep-alive connections one worker holds before it
#       stops accepting: a burst of new connections (Telegram opening its
#       webhook connections) then spreads over the workers instead of piling
#       onto whichever accepted first.
#   max_requests / max_requests_jitter - recycle workers now and then,
#       at different times, to bound any slow leak.
worker_class = "gthread"
workers = settings.web_concurrency
threads = settings.gunicorn_threads
timeout = settings.gunicorn_timeout
graceful_timeout = 20
keepalive = 30
worker_connections = max(16, settings.gunicorn_threads * 4)
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
control_socket = settings.control_socket or os.path.join(
    tempfile.gettempdir(), f"gunicorn-bot-{settings.port}.ctl")

# Logging
#   accesslog - off: one line per webhook call is noise at this rate;
#       errors and our own log lines go to stderr.
accesslog = None
errorlog = "-"
loglevel = settings.log_level.lower()

_worker_started = {}


def on_starting(server):
    """Master, before forking: say what we are about to open, then migrate."""
    from database import migrations
    from observability import metrics

    log.info("starting: %s", settings.describe_pool())
    metrics.clear(settings.metrics_dir)  # counts from an earlier run would be merged in
    migrations.upgrade_to_head(server.app.wsgi())


def post_worker_init(worker):
    """Worker, after fork: own pool, diagnostics, background threads."""
    from worker_process import lifecycle

    _worker_started[os.getpid()] = time.monotonic()
    app = worker.wsgi
    lifecycle.after_fork(app)
    # gunicorn resets signal handlers after post_fork, so register here.
    # SIGUSR1 is gunicorn's log reopen; SIGUSR2 dumps every thread's stack.
    faulthandler.register(signal.SIGUSR2, all_threads=True, chain=False)
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
