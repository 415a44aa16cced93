"""Weight-free front-ends: the log-mel filterbank stand-in for an SFM (``FbankFrontend``) and
the SeamlessM4T-v2 Kaldi fbank computed by transformers' feature extractor (``hf``, CPU, one
utterance at a time) or batched in torch ops on the encoder's device (``torchaudio``:
``kaldi_fbank``, ``stack_normalized``), both padded the same way (``SeamlessFrontEnd``).

Authors
-------
speechmapper developers, 2026
"""

import torch

from speechmapper_plugin.features.frames import _pad_features, relative_to_frames


class FbankFrontend(torch.nn.Module):
    """Weight-free log-mel filterbank front-end (stands in for the SFM in offline presets).

    SpeechBrain ``Fbank`` (25 ms window, 10 ms hop, centred frames) followed by a
    per-utterance mean/variance normalisation over the valid frames; padded frames are zero.
    Each utterance gets ``samples // hop + 1`` frames, exactly as if it were processed alone.

    Arguments
    ---------
    n_mels : int
        Number of mel filters (the output dimension).
    sample_rate : int
        Input sampling rate.

    Example
    -------
    >>> frontend = FbankFrontend(n_mels=40)
    >>> feats, lens = frontend(torch.randn(2, 16000), torch.tensor([1.0, 0.5]))
    >>> feats.shape, lens.tolist(), frontend.frame_rate
    (torch.Size([2, 101, 40]), [1.0, 0.5049505233764648], 100.0)
    """

    def __init__(self, n_mels=80, sample_rate=16000):
        super().__init__()
        from speechbrain.lobes.features import Fbank

        self.n_mels = int(n_mels)
        self.sample_rate = int(sample_rate)
        self.hop_length = int(round(self.sample_rate * 10 / 1000))
        self.fbank = Fbank(n_mels=self.n_mels, sample_rate=self.sample_rate, hop_length=10)
        self.output_dim = self.n_mels
        self.frame_rate = self.sample_rate / self.hop_length
        self.min_samples = 1

    def describe(self):
        """Returns the settings that determine the features (stored in cache configs).

        Example
        -------
        >>> FbankFrontend().describe()["kind"]
        'fbank'
        """
        return {"kind": "fbank", "n_mels": self.n_mels, "sample_rate": self.sample_rate}

    def forward(self, wavs, wav_lens):
        """Computes normalised log-mel features.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms, shape ``[B, S]``.
        wav_lens : torch.Tensor
            Relative lengths, shape ``[B]``.

        Returns
        -------
        feats : torch.Tensor
            Shape ``[B, T, n_mels]`` with ``T = S // hop + 1``.
        lens : torch.Tensor
            Relative lengths of ``feats``.
        """
        n_samples = relative_to_frames(wav_lens, wavs.shape[1]).to(wavs.device)
        feats = self.fbank(wavs.float())
        total = feats.shape[1]
        n_frames = (torch.div(n_samples, self.hop_length, rounding_mode="floor") + 1).clamp(
            max=total
        )
        mask = (torch.arange(total, device=wavs.device)[None, :] < n_frames[:, None])[..., None]
        count = n_frames.float()[:, None, None]
        mean = (feats * mask).sum(dim=1, keepdim=True) / count
        var = (((feats - mean) * mask) ** 2).sum(dim=1, keepdim=True) / count
        feats = (feats - mean) / torch.sqrt(var + 1e-10) * mask
        return feats, n_frames.float() / total


FRONT_ENDS = ("hf", "torchaudio")


_FRAME_LENGTH = 400  # 25 ms at 16 kHz
_FRAME_SHIFT = 160  # 10 ms at 16 kHz
_FFT_LENGTH = 512
_KALDI_EPSILON = 1.1920928955078125e-07  # float32 machine epsilon, Kaldi's floor


def kaldi_fbank(wavs, n_samples, num_mel_bins=80, sample_rate=16000):
    """Kaldi log-mel filterbank of a batch of waveforms, computed on their device.

    The batched form of ``torchaudio.compliance.kaldi.fbank`` with SeamlessM4T-v2's settings
    (25 ms povey windows every 10 ms, no dither, DC offset removed, pre-emphasis 0.97,
    512-point power spectrum, 80 mel bins from 20 Hz to Nyquist, log floored at the float32
    epsilon; input scaled to the 16-bit range). Each frame reads only its own 400 samples,
    so the valid frames of an utterance do not depend on the padding or on the batch.

    Arguments
    ---------
    wavs : torch.Tensor
        Waveforms in [-1, 1], shape ``[B, S]`` (right-padded).
    n_samples : torch.Tensor
        Valid samples per utterance, shape ``[B]``.
    num_mel_bins : int
        Mel bins.
    sample_rate : int
        Sampling rate (16 kHz for the 25 ms / 10 ms frame sizes above).

    Returns
    -------
    log_mel : torch.Tensor
        ``[B, F, num_mel_bins]`` float32 on ``wavs.device``; frames past an utterance's
        ``n_frames`` hold padding and must be ignored.
    n_frames : torch.Tensor
        Valid frames per utterance ``1 + (n - 400) // 160`` (0 below 400 samples), ``[B]``.

    Example
    -------
    >>> log_mel, n_frames = kaldi_fbank(torch.randn(2, 16000) / 10, torch.tensor([16000, 8000]))
    >>> log_mel.shape, n_frames.tolist()
    (torch.Size([2, 98, 80]), [98, 48])
    """
    from torchaudio.compliance.kaldi import get_mel_banks

    if int(sample_rate) != 16000:
        raise ValueError(f"kaldi_fbank computes 16 kHz frames, got sample_rate={sample_rate}.")
    device = wavs.device
    x = wavs.float() * 2**15  # Kaldi compliance: 16-bit signed range
    if x.shape[1] < _FRAME_LENGTH:
        x = torch.nn.functional.pad(x, (0, _FRAME_LENGTH - x.shape[1]))
    frames = x.unfold(1, _FRAME_LENGTH, _FRAME_SHIFT)  # [B, F, 400], a view
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - 0.97 * previous
    window = torch.hann_window(_FRAME_LENGTH, periodic=False, device=device).pow(0.85)
    spectrum = torch.fft.rfft(frames * window, n=_FFT_LENGTH)
    power = torch.view_as_real(spectrum).pow(2).sum(dim=-1)  # |X|^2
    banks, _ = get_mel_banks(int(num_mel_bins), _FFT_LENGTH, float(sample_rate), 20.0, 0.0,
                             100.0, -500.0, 1.0)  # fmt: skip
    banks = torch.nn.functional.pad(banks, (0, 1)).to(device=device, dtype=power.dtype)
    log_mel = torch.matmul(power, banks.T).clamp_min(_KALDI_EPSILON).log()
    n_samples = torch.as_tensor(n_samples, device=device).long()
    n_frames = torch.div(n_samples - _FRAME_LENGTH, _FRAME_SHIFT, rounding_mode="floor") + 1
    return log_mel, n_frames.clamp(min=0, max=log_mel.shape[1])


def stack_normalized(log_mel, n_frames, stride=2):
    """SeamlessM4T-v2's fbank post-processing of a batch: each mel bin normalized over the
    valid frames of its utterance (mean 0, unbiased variance 1), then ``stride`` frames
    stacked; an odd last frame is zero-padded and masked, padding is zero with mask 0.

    Arguments
    ---------
    log_mel : torch.Tensor
        ``[B, F, M]`` log-mel frames (:func:`kaldi_fbank`).
    n_frames : torch.Tensor
        Valid frames per utterance, ``[B]``.
    stride : int
        Frames stacked together.

    Returns
    -------
    features : torch.Tensor
        ``[B, T, M * stride]`` with ``T = ceil(max(n_frames) / stride)``.
    mask : torch.Tensor
        ``[B, T]`` long, 1 where both stacked frames are valid.

    Example
    -------
    >>> features, mask = stack_normalized(torch.randn(2, 5, 3), torch.tensor([5, 2]))
    >>> features.shape, mask.tolist()
    (torch.Size([2, 3, 6]), [[1, 1, 0], [1, 0, 0]])
    """
    batch, total, bins = log_mel.shape
    n_frames = n_frames.to(log_mel.device)
    valid = (torch.arange(total, device=log_mel.device)[None, :] < n_frames[:, None])[..., None]
    count = n_frames.clamp(min=1).to(log_mel.dtype)[:, None, None]
    mean = (log_mel * valid).sum(dim=1, keepdim=True) / count
    var = (((log_mel - mean) * valid) ** 2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
    x = (log_mel - mean) / torch.sqrt(var + 1e-7) * valid
    longest = int(n_frames.max()) if batch else 0
    steps = -(-longest // stride)
    x = x[:, : steps * stride]
    if x.shape[1] < steps * stride:
        x = torch.nn.functional.pad(x, (0, 0, 0, steps * stride - x.shape[1]))
    features = x.reshape(batch, steps, bins * stride)
    steps_valid = torch.div(n_frames, stride, rounding_mode="floor")
    mask = (torch.arange(steps, device=log_mel.device)[None, :] < steps_valid[:, None]).long()
    return features, mask


class SeamlessFrontEnd:
    """SeamlessM4T-v2's front-end (picklable, no weights), for one utterance or a batch.

    80-dim Kaldi fbank of the 16-bit-scaled waveform, normalization of each mel bin over the
    utterance and 2 frames stacked into 160 dims (an odd last frame is zero-padded and
    masked), as ``SeamlessM4TFeatureExtractor`` computes them. Padding per-utterance outputs
    with zeros (features and mask) gives exactly the extractor's batched output.

    Arguments
    ---------
    feature_extractor : transformers.SeamlessM4TFeatureExtractor
        The checkpoint's feature extractor (sampling rate, stride, mel bins).
    kind : str
        ``"hf"``: the extractor itself (numpy on the CPU, one utterance at a time: the
        reference); extraction runs it in DataLoader workers beside the encoder
        (``extract_to_cache(num_workers=...)``). ``"torchaudio"``: the same Kaldi fbank as
        ``torchaudio.compliance.kaldi.fbank``, batched in plain torch ops on the device the
        waveforms are on (:func:`kaldi_fbank`, :func:`stack_normalized`), so that on a GPU
        the front-end runs there, beside the encoder; its log-mel energies differ from the
        reference by at most ~5e-4 (float rounding), and the feature cache records the choice.

    Example
    -------
    >>> from transformers import SeamlessM4TFeatureExtractor
    >>> wav = torch.randn(16000) / 10
    >>> features, mask = SeamlessFrontEnd(SeamlessM4TFeatureExtractor())(wav)
    >>> features.shape, int(mask.sum())
    (torch.Size([49, 160]), 49)
    >>> fast, _ = SeamlessFrontEnd(SeamlessM4TFeatureExtractor(), "torchaudio")(wav)
    >>> bool((fast - features).abs().max() < 1e-3)
    True
    """

    def __init__(self, feature_extractor, kind="hf"):
        if kind not in FRONT_ENDS:
            raise ValueError(f"front_end must be one of {FRONT_ENDS}, got {kind!r}.")
        self.feature_extractor = feature_extractor
        self.kind = kind
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.stride = int(feature_extractor.stride)

    @property
    def on_device(self):
        """Whether the front-end runs batched on the waveforms' device (``"torchaudio"``)
        rather than one utterance at a time on the CPU (``"hf"``)."""
        return self.kind == "torchaudio"

    def __call__(self, wav):
        """Features ``[T, 80 * stride]`` and mask ``[T]`` of a 1-D waveform."""
        if self.kind == "hf":
            inputs = self.feature_extractor(
                [wav.float().cpu().numpy()],
                sampling_rate=self.sample_rate,
                padding=True,
                return_attention_mask=True,
                return_tensors="pt",
            )
            return inputs["input_features"][0], inputs["attention_mask"][0]
        features, mask = self.batch(wav[None], torch.tensor([wav.shape[0]]))
        return features[0], mask[0]

    def batch(self, wavs, n_samples):
        """Features ``[B, T, 80 * stride]`` and mask ``[B, T]`` of right-padded waveforms
        ``[B, S]`` with ``n_samples`` valid samples each (on the waveforms' device for
        ``"torchaudio"``, on the CPU for ``"hf"``).

        Example
        -------
        >>> from transformers import SeamlessM4TFeatureExtractor
        >>> front_end = SeamlessFrontEnd(SeamlessM4TFeatureExtractor(), "torchaudio")
        >>> features, mask = front_end.batch(torch.randn(2, 8000) / 10, torch.tensor([8000, 5000]))
        >>> features.shape, mask.sum(dim=1).tolist()
        (torch.Size([2, 24, 160]), [24, 14])
        """
        n_samples = torch.as_tensor(n_samples)
        if not self.on_device:
            return pad_front_end(
                [self(wavs[i, : int(n)]) for i, n in enumerate(n_samples.tolist())]
            )
        log_mel, n_frames = kaldi_fbank(
            wavs,
            n_samples,
            num_mel_bins=int(self.feature_extractor.num_mel_bins),
            sample_rate=self.sample_rate,
        )
        return stack_normalized(log_mel, n_frames, self.stride)


def pad_front_end(outputs):
    """Right-pads per-utterance front-end outputs into a batch (zeros, mask 0).

    Arguments
    ---------
    outputs : list of tuple
        ``(features [T_i, F], mask [T_i])`` pairs.

    Returns
    -------
    features : torch.Tensor
        ``[B, T, F]``.
    mask : torch.Tensor
        ``[B, T]``.

    Example
    -------
    >>> feats, mask = pad_front_end([(torch.ones(3, 2), torch.ones(3)), (torch.ones(1, 2), torch.ones(1))])
    >>> feats.shape, mask.tolist()
    (torch.Size([2, 3, 2]), [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    """
    features, _ = _pad_features([f for f, _ in outputs])
    mask, _ = _pad_features([m[:, None] for _, m in outputs])
    return features, mask[..., 0]
