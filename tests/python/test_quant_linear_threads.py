"""Forwards from several Python threads on one packed layer give the single-thread results, bit for bit."""

import threading

import torch

import ark
from quant_linear_reference import report_seed  # noqa: F401 (autouse: prints the seed)
from quant_linear_reference import case_id, generator, make_checkpoint, random_input

K, N = 512, 256


def test_concurrent_forwards_match_sequential():
    gen = generator(case_id("threads"))
    layer = ark.QuantLinear(4, 128, K, N, True, kernel_switch_threshold=16, sym=False,
                            packing_format="auto_round:auto_awq")
    layer.load_state_dict(make_checkpoint(ark, gen, 4, 128, False, "auto_round:auto_awq", K, N, bias=True))
    ark.ark_post_init(layer)
    inputs = [random_input(gen, (m, K), dt) for m in (1, 4, 16, 40) for dt in (torch.float32, torch.bfloat16)]
    expected = [layer(x) for x in inputs]

    failures = []
    start = threading.Barrier(6)

    def worker(tid):
        start.wait()
        for rep in range(20):
            i = (tid + rep) % len(inputs)
            y = layer(inputs[i])
            if not torch.equal(y, expected[i]):
                failures.append((tid, rep, i))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
