"""The in-process timers' jobs, over real PostgreSQL."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from models.base import db, utcnow
from models.lease import Lease
from models.membership import Membership
from worker_process import periodic_jobs


def expired_member(app, user_id: int) -> None:
    with app.app_context():
        db.session.add(Membership(user_id=user_id, expires_at=utcnow() - timedelta(days=3), updated_at=utcnow()))
        db.session.commit()


def removed(app, user_id: int) -> bool:
    with app.app_context():
        return db.session.get(Membership, user_id).removed_for is not None


def test_the_sweep_runs_once_per_interval_across_workers_and_replicas(app):
    slots = app.extensions["background_slots"]
    expired_member(app, 5001)
    periodic_jobs.sweep_job(app, slots)
    assert removed(app, 5001)
    expired_member(app, 5002)
    periodic_jobs.sweep_job(app, slots)  # another worker's tick, within the interval: the lease says no
    assert not removed(app, 5002)
    with app.app_context():  # the interval has passed
        db.session.execute(update(Lease).where(Lease.name == periodic_jobs.SWEEP_LEASE)
                           .values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    periodic_jobs.sweep_job(app, slots)
    assert removed(app, 5002)
