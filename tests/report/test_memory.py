"""A long log is streamed: the aggregator's state stops growing once every layer and key has been seen."""

from __future__ import annotations

from quantguard.report import Aggregator, FileStats, read_events

LINES = 200_000
LAYERS = 8
CALLSITES = 3


def _write_long_log(path):
    """Shadow results for 8 layers, a violation every 50 lines (3 callsites, cumulative counts), some garbage."""
    counts = [0] * CALLSITES
    with open(path, "w") as log:
        log.write('{"event":"quantguard.enabled","pid":1,"config":{"label":"long"},"platform":{}}\n')
        for i in range(LINES):
            if i % 50 == 0:
                callsite = i % CALLSITES
                counts[callsite] += 1
                log.write(
                    '{"event":"quantguard.violation","pid":1,"target":"t","check":"numerics",'
                    '"severity":"error","callsite":"m.py:%d","count":%d,"backend":"ck"}\n'
                    % (callsite, counts[callsite])
                )
            elif i % 10_007 == 0:
                log.write("{truncated by a crash\n")
            else:
                cosine = 1 - (i * 7919 % 100_003) / 1e7
                log.write(
                    '{"event":"quantguard.shadow","pid":1,"target":"t","backend":"ck","layer":"layers.%d",'
                    '"cosine":%r,"threshold":0.99,"passed":true,"count":%d}\n' % (i % LAYERS, cosine, i)
                )
    return sum(counts)


def test_state_is_bounded_while_streaming_a_long_log(tmp_path):
    path = tmp_path / "long.jsonl"
    violations = _write_long_log(path)
    aggregator = Aggregator(tail_size=500)
    stats = FileStats(str(path), path.name)
    footprints = {}
    for number, event in enumerate(read_events(path, stats), start=1):
        aggregator.add(event, stats.name)
        if number % 50_000 == 0:
            footprints[number] = aggregator.footprint()
    report = aggregator.finish()

    first, *later = footprints.values()
    assert len(footprints) >= 3
    assert all(footprint == first for footprint in later), footprints
    assert first["cosines"] == LAYERS * 500
    assert first["count_keys"] == CALLSITES

    assert stats.lines == LINES + 1 and stats.malformed_total == 19
    assert report.checks["numerics"].total == violations
    layer = report.layers[("long", "layers.0")]
    assert layer.cosines.samples > 20_000 and layer.cosines.p1_exact
