"""Tests of ``speechmapper_plugin.models.speechmapper`` (the SpeechMapper projector (paper App)."""

import re

import pytest
import torch

from speechmapper_plugin.models.projectors import load_projector_checkpoint
from speechmapper_plugin.models.speechmapper import (
    SpeechMapper,
    conv_output_lengths,
    lengths_to_padding_mask,
)

from .helpers import TINY, _tiny


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models: one intra-op thread avoids OpenMP spin-waiting on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL = dict(input_dim=16, block_dims=[16, 24], output_dims=[24, 32], num_layers=1, nhead=4)


def _small(**kwargs):
    torch.manual_seed(0)
    return SpeechMapper(**{**SMALL, **kwargs}).eval()


def _num_params(module):
    return sum(p.numel() for p in module.parameters())


def _expected_params(input_dim, block_dims, output_dims, num_layers, d_ffn, kernel, glu, llm_dim):
    """Parameter count from the architecture description (conv -> pre-norm encoder with a
    final LayerNorm -> linear, then a square final linear)."""
    total, in_dim = 0, input_dim
    for d, o, n, f in zip(block_dims, output_dims, num_layers, d_ffn):
        conv_out = 2 * d if glu else d
        total += in_dim * conv_out * kernel + conv_out
        attention = 3 * d * d + 3 * d + d * d + d
        ffn = d * f + f + f * d + d
        total += n * (attention + ffn + 4 * d) + 2 * d
        total += d * o + o
        in_dim = o
    return total + in_dim * llm_dim + llm_dim


def test_paper_configuration_has_the_documented_parameter_count():
    documented = re.search(r"\*\*([\d,]+)\*\*", SpeechMapper.__doc__).group(1)
    with torch.device("meta"):  # 279M parameters: count them without allocating 1.1 GB
        mapper = SpeechMapper()
    count = _num_params(mapper)
    assert count == int(documented.replace(",", ""))
    assert count == _expected_params(
        1024, [1024, 2048], [2048, 4096], [6, 6], [1024, 2048], 6, True, 4096
    )
    assert abs(count - 277e6) / 277e6 < 0.01  # paper: "277M parameters"


def test_documented_alternative_count_without_glu():
    assert "272,845,824" in SpeechMapper.__doc__
    with torch.device("meta"):
        mapper = SpeechMapper(conv_activation=None, d_ffn=(3072, 2048))
    assert _num_params(mapper) == 272_845_824


def test_small_configuration_counts_match_the_architecture():
    mapper = _small(num_layers=[1, 2], d_ffn=[40, 8], kernel_size=4, llm_dim=12)
    assert _num_params(mapper) == _expected_params(
        16, [16, 24], [24, 32], [1, 2], [40, 8], 4, True, 12
    )
    mapper = _small(conv_activation="relu")
    assert _num_params(mapper) == _expected_params(
        16, [16, 24], [24, 32], [1, 1], [16, 24], 6, False, 32
    )


CONFIGS = {
    "one_block": dict(input_dim=16, block_dims=[16], output_dims=[20], num_layers=1, nhead=2),
    "two_blocks": SMALL,
    "three_blocks_lists": dict(
        input_dim=12,
        block_dims=[16, 16, 8],
        output_dims=[16, 8, 8],
        llm_dim=10,
        num_layers=[1, 2, 1],
        nhead=[4, 2, 1],
        d_ffn=[32, 8, 16],
        kernel_size=[4, 3, 6],
        stride=[2, 1, 2],
        conv_activation="gelu",
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_valid_outputs_do_not_depend_on_padding(name):
    torch.manual_seed(0)
    mapper = SpeechMapper(**CONFIGS[name]).eval()
    dim = CONFIGS[name]["input_dim"]
    out_dim = CONFIGS[name].get("llm_dim", CONFIGS[name]["output_dims"][-1])
    short_len, long_len = 37, 61
    short = torch.randn(1, short_len, dim)
    long = torch.randn(1, long_len, dim)
    with torch.no_grad():
        alone, alone_lens = mapper(short)  # no padding at all
        batch = torch.zeros(2, long_len, dim)
        batch[0, :short_len], batch[1] = short[0], long[0]
        lengths = torch.tensor([short_len / long_len, 1.0])
        out, out_lens = mapper(batch, lengths)
        batch[0, short_len:] = 1e6  # padded frames with huge values
        out_huge, out_lens_huge = mapper(batch, lengths)
        batch[0, short_len:] = float("nan")
        out_nan, _ = mapper(batch, lengths)
        long_alone, _ = mapper(long)

    n_short = alone.shape[1]
    assert out.shape == (2, long_alone.shape[1], out_dim)
    assert alone_lens.tolist() == [1.0]
    abs_lens = torch.round(out_lens * out.shape[1]).long()
    assert abs_lens.tolist() == [n_short, long_alone.shape[1]]
    assert torch.equal(out_lens, out_lens_huge)
    assert mapper.output_lengths(torch.tensor([short_len, long_len])).tolist() == abs_lens.tolist()
    for batched in (out, out_huge, out_nan):
        torch.testing.assert_close(batched[0, :n_short], alone[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batched[1], long_alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "name, in_len, out_len",
    [
        ("one_block", 100, 50),
        ("two_blocks", 100, 25),
        ("two_blocks", 9, 2),
        ("three_blocks_lists", 100, 25),
    ],
)
def test_output_lengths_follow_the_strides(name, in_len, out_len):
    torch.manual_seed(0)
    mapper = SpeechMapper(**CONFIGS[name]).eval()
    with torch.no_grad():
        out, lens = mapper(torch.randn(1, in_len, CONFIGS[name]["input_dim"]))
    assert out.shape[1] == out_len
    assert mapper.output_lengths(torch.tensor([in_len])).tolist() == [out_len]


def test_relative_lengths_in_speechbrain_convention():
    mapper = _small()
    with torch.no_grad():
        out, lens = mapper(torch.randn(3, 100, 16), torch.tensor([1.0, 0.5, 0.01]))
    assert out.shape == (3, 25, 32)
    # 100 -> 50 -> 25; 50 -> 25 -> 12 (floor((25 + 4 - 6) / 2) + 1); 1 -> 1 -> 1 (never 0)
    assert torch.round(lens * 25).tolist() == [25.0, 12.0, 1.0]


def test_helpers():
    assert lengths_to_padding_mask(torch.tensor([1, 3]), 3).tolist() == [
        [False, True, True],
        [False, False, False],
    ]
    # torch's own Conv1d gives the reference output length; an input shorter than the
    # kernel (after padding) still yields one vector
    conv = torch.nn.Conv1d(1, 1, kernel_size=6, stride=2, padding=2)
    for length in (2, 5, 6, 7, 100):
        expected = conv(torch.zeros(1, 1, length)).shape[-1]
        assert conv_output_lengths(torch.tensor([length]), 6, 2, 2).item() == expected
    assert conv_output_lengths(torch.tensor([1]), 6, 2, 2).item() == 1


def test_dropout_is_active_in_training_and_off_in_eval():
    mapper = _small(dropout=0.3)
    feats = torch.randn(2, 40, 16)
    with torch.no_grad():
        first, _ = mapper(feats)
        second, _ = mapper(feats)
        assert torch.equal(first, second)
        mapper.train()
        train1, _ = mapper(feats)
        train2, _ = mapper(feats)
    assert not torch.allclose(train1, train2)


def test_final_init_gain_scales_the_final_layer():
    reference = _small()
    scaled = _small(final_init_gain=0.1)
    torch.testing.assert_close(scaled.final.weight, reference.final.weight * 0.1)
    torch.testing.assert_close(scaled.final.bias, reference.final.bias * 0.1)


def test_wrong_input_dimension_names_the_expected_size():
    mapper = _small()
    with pytest.raises(ValueError, match=r"\[batch, time, 16\], got \(2, 10, 17\).*input_dim"):
        mapper(torch.zeros(2, 10, 17))
    with pytest.raises(ValueError, match=r"got \(10, 16\)"):
        mapper(torch.zeros(10, 16))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(output_dims=[24]), r"block_dims \[16, 24\] and output_dims \[24\]"),
        (dict(num_layers=[1, 1, 1]), "`num_layers` has 3 values but there are 2 blocks"),
        (dict(stride=[2]), "`stride` has 1 values but there are 2 blocks"),
        (dict(nhead=5), "block 1 width 16 is not divisible by nhead=5"),
        (dict(nhead=[4, 5]), "block 2 width 24 is not divisible by nhead=5"),
        (dict(conv_activation="swish"), "unknown conv_activation 'swish'"),
    ],
)
def test_bad_hyper_parameters_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpeechMapper(**{**SMALL, **kwargs})


def test_hyper_parameter_mismatch_is_explained(tmp_path):
    path = tmp_path / "projector.ckpt"
    torch.save(_tiny(1).state_dict(), path)
    other = SpeechMapper(**{**TINY, "block_dims": [4], "nhead": 2})
    with pytest.raises(
        RuntimeError, match="does not match this projector's hyper-parameters"
    ) as err:
        load_projector_checkpoint(other, str(path))
    assert str(path) in str(err.value)
