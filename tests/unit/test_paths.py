"""Cache locks serialise builders of one cache entry (seen for real: two debootstraps into one
.tmp directory when two rig processes needed a new image at once)."""
import threading
import time

from pinrig import paths


def test_cache_lock_serialises(tmp_path):
    events = []

    def worker(name):
        with paths.cache_lock(tmp_path / "entry"):
            events.append(f"{name}-in")
            time.sleep(0.2)
            events.append(f"{name}-out")

    ts = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert events in (["a-in", "a-out", "b-in", "b-out"], ["b-in", "b-out", "a-in", "a-out"])


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PINRIG_CACHE", str(tmp_path / "c"))
    assert paths.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
