"""The engine's extra onnxruntime sessions (one thread for short runs on the event
loop, two for its batches) give the same bytes as the main one, in process."""

import numpy as np
from prometheus_client import CollectorRegistry

from genserve.contract import random_input
from server.engine import WIDE_ROWS, Engine
from server.metrics import Metrics
from server.settings import Settings


def random_rows(model, n, rng):
    """``n`` rows of well-formed inputs, as the batcher queues them."""
    return model.rows(*(random_input(spec, n, rng) for spec in model.contract.inputs))


def assert_same_bytes(model, first, second, sizes, rng):
    """Two sessions of ``model`` give the same bytes for the same random batches."""
    for n in sizes:
        feed = model.feeds(random_rows(model, n, rng))
        for one, other in zip(first.run(None, feed), second.run(None, feed)):
            assert np.array_equal(one, other), f"{model.name} at batch {n}"


def test_short_runs_use_a_one_thread_session_that_gives_the_same_bytes(tiny_repository):
    rng = np.random.default_rng(0)
    engine = Engine(Settings(model_repository=tiny_repository, intra_op_threads=2), Metrics(CollectorRegistry()))
    engine.load()
    for name, model in engine.models.items():
        assert model.session.get_session_options().intra_op_num_threads == 2
        assert model.short_session.get_session_options().intra_op_num_threads == 1
        assert_same_bytes(model, model.session, model.short_session, (1, 5, 64), rng)
        # What splitting a batch across instances relies on: the rows' bytes do not
        # depend on the run they are in.
        rows = random_rows(model, 96, rng)
        whole = model.session.run(None, model.feeds(rows))
        parts = [model.short_session.run(None, model.feeds(part)) for part in (rows[:48], rows[48:])]
        for output, *split in zip(whole, *parts):
            assert np.array_equal(output, np.concatenate(split)), f"{name} split in two"

    assert all(m.wide_session is m.session for m in engine.models.values())

    one_thread = Engine(Settings(model_repository=tiny_repository, intra_op_threads=1), Metrics(CollectorRegistry()))
    one_thread.load()
    assert all(m.short_session is m.session for m in one_thread.models.values())


def test_batches_on_the_event_loop_use_a_two_thread_session_that_gives_the_same_bytes(tiny_repository):
    rng = np.random.default_rng(1)
    engine = Engine(Settings(model_repository=tiny_repository, instances=2), Metrics(CollectorRegistry()))
    engine.load()
    for model in engine.models.values():
        assert model.wide_session.get_session_options().intra_op_num_threads == 2
        assert model.loop_session(WIDE_ROWS) is model.wide_session
        assert model.loop_session(WIDE_ROWS - 1) is model.short_session
        assert_same_bytes(model, model.wide_session, model.short_session, (WIDE_ROWS, 64), rng)

    # One core per model instance: no second core for the other half.
    one_core = Engine(Settings(model_repository=tiny_repository, instances=1), Metrics(CollectorRegistry()))
    one_core.load()
    for model in one_core.models.values():
        assert model.wide_session is None and model.loop_session(64) is model.short_session
