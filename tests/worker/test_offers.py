"""Workers offer the trainers installed on them in SQL; a study nobody can run says it waits."""

from __future__ import annotations

from datetime import timedelta

from hpsearch.api.views import study_public
from hpsearch.db import accounts
from hpsearch.db import trainers as offers
from hpsearch.db.migrate import upgrade
from hpsearch.db.models import TrainerOffer, utcnow
from hpsearch.db.session import session_scope
from hpsearch.search import coordinator
from hpsearch.search.definition import StudyDefinition
from hpsearch.worker.sweeper import Sweeper
from hpsearch.worker.trainers import Offers, installed
from tests.conftest import tiny_study


def test_an_offer_is_announced_kept_alive_and_withdrawn(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    mine = Offers(sqlite_url)
    mine.announce()
    with session_scope(sqlite_url) as session:
        rows = session.query(TrainerOffer).filter_by(worker=mine.worker).all()
        assert {r.name for r in rows} == set(installed()) and "numpy" in installed()
        first_seen = rows[0].last_seen_at
        numpy = next(r for r in rows if r.name == "numpy")
        assert "training" in numpy.config_schema["properties"]
    mine.keep_alive()
    with session_scope(sqlite_url) as session:
        assert offers.latest(session, "numpy").last_seen_at > first_seen  # type: ignore[union-attr]
    mine.withdraw()
    with session_scope(sqlite_url) as session:
        # No longer live, but its schema still judges studies of it.
        assert not offers.is_offered(session, "numpy", first_seen)
        assert offers.latest(session, "numpy") is not None
    mine.keep_alive()  # withdrawn meanwhile: offered again, live
    with session_scope(sqlite_url) as session:
        assert offers.is_offered(session, "numpy", first_seen)


def test_a_running_study_waits_while_no_live_worker_offers_its_trainer(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    with session_scope(sqlite_url) as session:
        team = accounts.create_team(session, "alpha")
        definition = StudyDefinition.model_validate(tiny_study())
        study = coordinator.create_study(session, team_id=team.id, definition=definition)
        assert study_public(session, study, "alpha").waiting == "no worker offers trainer 'numpy'"
        numpy = {
            "name": "numpy",
            "version": "1",
            "config_schema": {},
            "step_metrics": [],
            "final_metrics": [],
        }
        # A worker last seen an hour ago does not count; one seen now does.
        offers.offer(session, "old:1", "old", [numpy], utcnow() - timedelta(hours=1))
        assert study_public(session, study, "alpha").waiting is not None
        offers.offer(session, "new:2", "new", [numpy], utcnow())
        shown = study_public(session, study, "alpha")
        assert shown.waiting is None and shown.trainer == "numpy"


def test_a_sweeper_may_offer_from_its_thread_and_still_withdraws(sqlite_url: str) -> None:
    # `hpsearch run`'s pool: its first trials do not wait for the offer to be written.
    upgrade(sqlite_url)
    sweeper = Sweeper(lambda trial_ids: None, sqlite_url).start(offer_first=False)
    sweeper.stop()  # the thread offers as it starts; stopping waits for it, then withdraws
    with session_scope(sqlite_url) as session:
        rows = session.query(TrainerOffer).filter_by(worker=sweeper.offers.worker).all()
        assert {r.name for r in rows} == set(installed())
        assert all(r.withdrawn_at is not None for r in rows)
