"""The bench's measurement protocol: interleaved windows with their spread, the peer process protocol (against a
stand-in server), and the conv_layers section's layer list and figures."""
from __future__ import annotations

import sys
import textwrap

import pytest

from sweep.bench import peer as peer_module
from sweep.bench.conv_layers import conv_specs, time_layer
from sweep.bench.timing import interleave, ratio_windows, spread, summarize


def test_candidates_take_turns_and_the_order_flips_every_window():
    calls = []
    candidates = {name: (lambda name=name: calls.append(name) or (0.1, 0.05)) for name in "ab"}
    out = interleave(candidates, windows=4)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert out["a"] == {"wall": [0.1] * 4, "cpu": [0.05] * 4}


def test_summaries_and_ratios_carry_the_median_and_the_spread():
    samples = {"wall": [0.3, 0.1, 0.2], "cpu": [0.5, 0.4, 0.6]}
    out = summarize(samples, batch_size=10)
    assert out["images_per_s"] == pytest.approx(50.0) and out["best_images_per_s"] == pytest.approx(100.0)
    assert out["seconds_per_step_spread"]["min"] == 0.1 and out["seconds_per_step_spread"]["max"] == 0.3
    assert out["cpu_seconds_per_step"] == pytest.approx(0.5)
    ratio = ratio_windows({"wall": [0.4, 0.2, 0.6], "cpu": [1.0, 1.0, 1.0]}, samples)
    assert ratio["windows"] == [1.3333, 2.0, 3.0] and ratio["ratio"] == 2.0
    assert ratio["wall"]["min"] == pytest.approx(4 / 3) and ratio["cpu_ratio"] == 2.0
    assert spread([1, 2, 3, 4])["q1"] == pytest.approx(1.75)


FAKE_SERVER = textwrap.dedent('''
    import json, sys
    for line in sys.stdin:
        r = json.loads(line)
        if r["cmd"] == "quit":
            break
        reply = {"hello": {"backend": "fake", "versions": {}},
                 "model": {"model": r.get("model"), "train_step_s": 0.01, "eval_step_s": 0.01},
                 "window": {"wall_s": 0.02, "cpu_s": 0.03, "steps": r.get("steps")},
                 }.get(r["cmd"], {"error": "unknown command " + r["cmd"]})
        print(json.dumps(reply), flush=True)
''')


@pytest.fixture
def fake_server(tmp_path, monkeypatch):
    script = tmp_path / "fake_peer.py"
    script.write_text(FAKE_SERVER)
    monkeypatch.setattr(peer_module, "PEER_SCRIPT", script)
    return script


def test_peer_client_times_windows_in_the_peer_process_and_reports_its_errors(fake_server):
    peer = peer_module.KerasPeer("jax", sys.executable, timeout=60)
    try:
        assert peer.hello["backend"] == "fake"
        assert peer.prepare_model("cnn", 64, 32)[None]["model"] == "cnn"  # Keras on JAX: its default setting
        assert peer.window("train", window_s=0.05)() == (0.02, 0.03)
        with pytest.raises(peer_module.PeerError, match="unknown command nope"):
            peer.ask(cmd="nope")
    finally:
        peer.close()


def test_the_tensorflow_peer_builds_and_times_the_model_with_jit_compile_false_and_true(fake_server):
    peer = peer_module.KerasPeer("tensorflow", sys.executable, timeout=60)
    try:
        assert set(peer.prepare_model("cnn", 64, 32)) == {False, True}
        assert peer.window("train", window_s=0.05, jit_compile=True)() == (0.02, 0.03)
        assert peer_module.setting_name("tensorflow", True) == "tensorflow_jit_true"
    finally:
        peer.close()


def test_a_peer_that_cannot_start_is_skipped_with_the_reason(tmp_path, monkeypatch):
    script = tmp_path / "broken_peer.py"
    script.write_text("raise SystemExit('No module named keras')\n")
    monkeypatch.setattr(peer_module, "PEER_SCRIPT", script)
    peers, skipped = peer_module.open_peers(sys.executable, log=lambda _: None)
    assert peers == {} and set(skipped) == {"keras_jax", "keras_tensorflow"}
    assert "No module named keras" in skipped["keras_jax"]["skipped"]


def test_conv_specs_list_each_distinct_conv_once_with_its_layers():
    cnn = conv_specs("cnn", 64)
    assert [(s["size"], s["channels"], s["features"], s["kernel"]) for s in cnn] == [
        (64, 3, 32, 3), (32, 32, 64, 5), (16, 64, 128, 3), (8, 128, 256, 5), (4, 256, 512, 3)]
    assert [s["input_grad"] for s in cnn] == [False, True, True, True, True]
    resnet = conv_specs("resnet50v2", 64)
    assert sum(len(s["layers"]) for s in resnet) == 1 + 16 * 3 + 4  # stem, 16 blocks of three, 4 shortcuts
    assert resnet[0]["layers"] == ["conv1_conv"] and resnet[0]["size"] == 70 and resnet[0]["stride"] == 2
    with pytest.raises(ValueError, match="choose from"):
        conv_specs("fusion", 64)


def test_one_conv_layer_is_timed_in_every_form_and_against_the_peer():
    asked = []

    class Peer:
        def window(self, phase, window_s, layer=None, step_s=None):
            asked.append((phase, layer, step_s))
            return lambda: (0.004, 0.008)

    spec = dict(conv_specs("cnn", 32)[2])  # 8x8x64 -> 128, 3x3 SAME: im2col on CPU
    row = time_layer(spec, 2, windows=2, window_s=0.01, peer=Peer(), peer_layer=1, peer_step_s=[0.004, 0.004])
    assert row["form"] == "im2col" and row["count"] == 1
    for phase in ("fwd", "grad"):
        assert "tensorflow_ms" in row[phase] and row[phase]["ours_ms"] > 0
        assert row[phase]["xla_ms"] > 0 and len(row[phase]["tensorflow_over_ours"]["windows"]) == 2
    # the peer is asked once per phase, for the layer and the step time it was given
    assert len({phase for phase, _, _ in asked}) == 2 and [(layer, step) for _, layer, step in asked] == [(1, 0.004)] * 2
