"""Railway Infrastructure as Code (successor of railway.json, which Railway stops reading on 2026-12-01).

The server needs only its start command: it migrates its own schema at start
(serialized across replicas) and runs its timers in-process. The pre-deploy
migration below is the same idempotent step run earlier, so a broken
migration stops the deploy before traffic moves.
"""
from railway_sdk import define_railway, postgres, project, service

START = "gunicorn -c gunicorn.conf.py main:app"  # the Procfile's web line


@define_railway
def main(ctx=None):
    db = postgres("postgres")
    web = service(
        "web",
        start=START,
        preDeploy="flask --app main db upgrade",
        healthcheck="/health",
        healthcheckTimeout=120,
        replicas=1,
        deploy={
            "restartPolicyType": "ON_FAILURE",
            "restartPolicyMaxRetries": 10,
            # Old and new deployments overlap: DB_MAX_CONNECTIONS must leave
            # room for both (see README, "Connection budget").
            "overlapSeconds": 20,
            "drainingSeconds": 25,
        },
        env={
            "DATABASE_URL": db.env.DATABASE_URL,
            "WEB_CONCURRENCY": "2",
            "GUNICORN_THREADS": "4",
            "DB_MAX_CONNECTIONS": "40",
        },
    )
    return project("telegram-membership-bot", resources=[db, web])
