"""Process-wide runtime settings (scorekit/runtime.py): nothing changes the process until `runtime.apply()` is
called, `apply` is idempotent and says what it did, and the CPU matmul is the same in every run of one machine.

Each check that looks at process state runs in a fresh interpreter, so this test process stays clean and no
earlier test's state can make a check pass. The probes below are observations of the effect, not of flags:
- glibc's thresholds: allocate and free three 24 MiB blocks and see whether they came from the heap
  (mallinfo2().hblkhd did not grow) and stayed there (mallinfo2().fordblks). glibc's own sliding thresholds
  never do both; scorekit's do.
- torch's thread count: `torch.get_num_threads()` in the main thread and in a thread started afterwards (which
  adopts the process-wide count at its first torch op).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import textwrap

import pytest

from scorekit.models import gemm

PROBES = r'''
import ctypes, json, os, threading, torch

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2

libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]

def heap_kept():
    """Do three freed 24 MiB blocks stay in the heap? glibc's sliding thresholds serve them with mmap (after the
    8 MiB free the mmap threshold sits at 8 MiB) or, once earlier frees slid it up to its 32 MiB cap, give the
    72 MiB back on free (the trim threshold slides to twice the mmap threshold, at most 64 MiB); scorekit's
    (32 MiB mmap, 1 GiB trim) keep them."""
    libc.free(libc.malloc(8 << 20))
    before = libc.mallinfo2().hblkhd
    blocks = [libc.malloc(24 << 20) for _ in range(3)]
    mmapped = libc.mallinfo2().hblkhd - before >= 24 << 20
    for block in reversed(blocks):
        libc.free(block)
    return not mmapped and libc.mallinfo2().fordblks >= 72 << 20

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def touched_and_freed(n, size=24 << 20):
    """n blocks of `size`, written (so they count in RSS), then freed in reverse: the top of the heap last."""
    blocks = [libc.malloc(size) for _ in range(n)]
    for block in blocks:
        libc.memset(block, 1, size)
    for block in reversed(blocks):
        libc.free(block)

def fresh_thread_torch_threads():
    out = []
    thread = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
    thread.start(); thread.join()
    return out[0]

def state():
    return {"heap_kept": heap_kept(), "main_threads": torch.get_num_threads(),
            "fresh_threads": fresh_thread_torch_threads()}
'''

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"),
                                reason="the mmap-threshold probe needs glibc >= 2.33 (mallinfo2)")


def run_python(body: str, **env: str) -> dict:
    """Run PROBES + body in a fresh interpreter; its last stdout line is JSON."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", gemm.ENV)}
    environ.update(env, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, "-c", PROBES + textwrap.dedent(body)], capture_output=True, text=True,
                          env=environ, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_importing_scorekit_and_running_an_llm_change_no_process_state():
    seen = run_python("""
        before = state()
        import scorekit
        llm = scorekit.LLM()
        llm.embed(["a sentence long enough to be worth a forward"] * 40, use_tqdm=False)  # starts the model threads
        print(json.dumps({"before": before, "after": state()}))
    """)
    assert seen["before"]["heap_kept"] is False  # the probe sees glibc's sliding thresholds...
    assert seen["after"] == seen["before"]  # ...and still does, and no thread count moved


@glibc_only
def test_apply_is_idempotent_and_returns_what_it_applied():
    seen = run_python("""
        import logging
        from scorekit import runtime
        records = []
        handler = logging.Handler(); handler.emit = records.append
        logging.getLogger("scorekit.runtime").addHandler(handler); logging.getLogger("scorekit.runtime").setLevel("INFO")
        first = runtime.apply()
        logged_first = len(records)
        second = runtime.apply()
        print(json.dumps({"first": first, "second": second, "logged": [logged_first, len(records)],
                          "state": state(), "message": records[0].getMessage()}))
    """)
    first = seen["first"]
    assert seen["second"] == first
    assert seen["logged"] == [1, 1]  # one INFO line for the change, none for the repeat
    assert first["malloc_mmap_threshold"] == 32 << 20 and first["malloc_trim_threshold"] == 1 << 30
    assert seen["state"]["heap_kept"] is True
    assert first["cpu_gemm"] in gemm.BACKENDS and first["cpu_gemm_reason"].startswith("rule for ")
    assert first["cpu_model"] == gemm.cpu_identity()[1]
    assert first["torch_threads"] == seen["state"]["main_threads"]
    assert f"on {first['cpu_gemm']}" in seen["message"]


def test_apply_sets_threads_and_gemm_over_the_environment():
    seen = run_python("""
        from scorekit import runtime
        from scorekit.models import gemm
        applied = runtime.apply(runtime.RuntimeSettings(malloc_mmap_threshold=None, malloc_trim_threshold=None,
                                                        torch_threads=1, cpu_gemm="onednn"))
        print(json.dumps({"applied": applied, "backend": gemm.cpu_backend(), "state": state()}))
    """, SCOREKIT_CPU_GEMM="mkl")
    assert seen["backend"] == seen["applied"]["cpu_gemm"] == "onednn"  # the setting beats the environment
    assert seen["applied"]["malloc_mmap_threshold"] is None and seen["applied"]["malloc_trim_threshold"] is None
    assert seen["state"]["heap_kept"] is False
    assert seen["applied"]["torch_threads"] == 1
    assert seen["state"]["main_threads"] == seen["state"]["fresh_threads"] == 1  # process-wide, as documented


def test_settings_out_of_range_are_refused():
    from scorekit.runtime import RuntimeSettings

    for bad in ({"malloc_mmap_threshold": 0}, {"malloc_mmap_threshold": 64 << 20}, {"malloc_trim_threshold": -1},
                {"malloc_trim_threshold": 1 << 31}, {"torch_threads": 0},
                {"cpu_gemm": "blas"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RuntimeSettings(**bad)


@glibc_only
def test_release_gives_the_kept_heap_back_once_it_has_grown():
    seen = run_python("""
        from scorekit import runtime
        untouched = runtime.release_free_memory()  # apply() not called: glibc trims on its own, nothing to do
        runtime.apply()
        runtime.release_free_memory()  # the first release sets the mark
        base = rss()
        touched_and_freed(12)  # 288 MiB written and freed: the heap keeps it
        kept = rss()
        released = runtime.release_free_memory()
        after = rss()
        touched_and_freed(1)  # 24 MiB: less growth than a release waits for
        print(json.dumps({"untouched": untouched, "base": base, "kept": kept, "released": released,
                          "after": after, "small": runtime.release_free_memory()}))
    """)
    assert seen["untouched"] is None
    assert seen["kept"] - seen["base"] > 250 << 20
    assert seen["released"] > 250 << 20 and seen["after"] - seen["base"] < 40 << 20
    assert seen["small"] is None


def test_the_engine_releases_free_memory_when_it_goes_idle(monkeypatch):
    import time

    from scorekit import LLM, runtime

    calls = []
    monkeypatch.setattr(runtime, "release_free_memory", lambda: calls.append(time.monotonic()))
    llm = LLM()
    llm.embed(["a sentence worth a forward"] * 8, use_tqdm=False)
    for _ in range(500):
        if calls and not llm.engine.scheduler.busy:
            break
        time.sleep(0.01)
    assert calls  # the last busy model thread, going idle, handed the heap's free pages back
    llm.engine.scheduler.stop()


def test_model_thread_threads_stay_in_that_thread():
    seen = run_python("""
        from scorekit import runtime
        before = fresh_thread_torch_threads()  # the main thread has not computed yet: it adopts the process count
        own = []
        def model_thread():
            runtime.set_model_thread_torch_threads(1)
            x = torch.randn(512, 512)
            (x @ x).add_(x).sum()  # a first parallel op: it must not re-initialise this thread's count
            own.append(torch.get_num_threads())
        thread = threading.Thread(target=model_thread); thread.start(); thread.join()
        print(json.dumps({"before": before, "own": own[0], "state": state()}))
    """)
    if seen["before"] == 1:
        pytest.skip("torch runs one thread by default here: nothing could leak")
    assert seen["own"] == 1
    assert seen["state"]["main_threads"] == seen["state"]["fresh_threads"] == seen["before"]


def test_gemm_choice_is_the_same_in_two_fresh_processes_and_follows_the_environment():
    body = """
        from scorekit.models import gemm
        print(json.dumps([gemm.cpu_backend(), gemm.set_cpu_backend(None)[1]]))
    """
    first, second = run_python(body), run_python(body)
    assert first == second
    assert first[1].startswith("rule for ")
    assert run_python(body, SCOREKIT_CPU_GEMM="onednn") == ["onednn", "SCOREKIT_CPU_GEMM=onednn"]
    assert run_python(body, SCOREKIT_CPU_GEMM="mkl") == ["mkl", "SCOREKIT_CPU_GEMM=mkl"]


@pytest.mark.parametrize("vendor, expected", [("AuthenticAMD", "onednn"), ("GenuineIntel", "mkl"), ("", "mkl"),
                                              ("CentaurHauls", "mkl")])
def test_the_rule_follows_the_cpu_vendor(monkeypatch, vendor, expected):
    monkeypatch.delenv(gemm.ENV, raising=False)
    monkeypatch.setattr(gemm, "cpu_identity", lambda: (vendor, "some model"))
    backend, why = gemm.decide_cpu_backend()  # decides without changing the process's choice
    assert backend == expected and "some model" in why


def test_a_bad_environment_value_is_refused(monkeypatch):
    monkeypatch.setenv(gemm.ENV, "openblas")
    with pytest.raises(ValueError, match="SCOREKIT_CPU_GEMM='openblas'"):
        gemm.decide_cpu_backend()
