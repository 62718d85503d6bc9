"""The README's main job: both demo tasks beat their baselines and meet the stated targets."""
import subprocess
import sys

from fastrnn import demo


def test_sunspot_forecast_beats_the_naive_forecast():
    result = demo.sunspots_forecast()
    assert result["model"] < result["baseline"]


def test_japanese_vowels_accuracy_is_at_least_90_percent():
    result = demo.vowels_classification()
    assert result["model"] >= 0.90
    assert result["model"] > result["baseline"]


def test_command_line_runs_the_demo_and_writes_its_pictures(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fastrnn", "demo", "--plots", "pictures"], capture_output=True,
                          text=True, timeout=600, check=True, cwd=tmp_path)  # the installed package, not the tree
    assert done.stdout.count("fastrnn beats the baseline") == 2, done.stdout
    pictures = sorted((tmp_path / "pictures").glob("*.png"))
    assert len(pictures) == 4 and done.stdout.count("wrote ") == 4
    for path in pictures:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
