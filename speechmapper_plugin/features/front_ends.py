"""Weight-free front-ends: the log-mel filterbank stand-in for an SFM (``FbankFrontend``) and
the SeamlessM4T-v2 Kaldi fbank computed by transformers' feature extractor (``hf``) or
vectorized with torchaudio (``torchaudio``), both padded the same way (``SeamlessFrontEnd``).

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


class SeamlessFrontEnd:
    """SeamlessM4T-v2's front-end for one utterance (picklable, CPU, no weights).

    80-dim Kaldi fbank of the 16-bit-scaled waveform, normalization of each mel bin over the
    utterance and 2 frames stacked into 160 dims (an odd last frame is zero-padded and
    masked), as ``SeamlessM4TFeatureExtractor`` computes them. Padding per-utterance outputs
    with zeros (features and mask) gives exactly the extractor's batched output, so
    extraction runs it in DataLoader workers, in parallel with the encoder
    (``extract_to_cache(num_workers=...)``).

    Arguments
    ---------
    feature_extractor : transformers.SeamlessM4TFeatureExtractor
        The checkpoint's feature extractor (sampling rate, stride, mel bins).
    kind : str
        ``"hf"``: the extractor itself (numpy, the reference). ``"torchaudio"``:
        ``torchaudio.compliance.kaldi.fbank`` with the same settings, vectorized (about 3x
        faster on a CPU core); its log-mel energies differ from the reference by at most
        ~5e-4 (float rounding), and the feature cache records the choice.

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
        from torchaudio.compliance import kaldi

        fbank = kaldi.fbank(
            wav.float().cpu()[None] * 2**15,  # Kaldi compliance: 16-bit signed range
            num_mel_bins=int(self.feature_extractor.num_mel_bins),
            sample_frequency=self.sample_rate,
            frame_length=25.0,
            frame_shift=10.0,
            dither=0.0,
            window_type="povey",
            preemphasis_coefficient=0.97,
            remove_dc_offset=True,
            energy_floor=0.0,
        )
        fbank = (fbank - fbank.mean(0)) / torch.sqrt(fbank.var(0, unbiased=True) + 1e-7)
        frames = fbank.shape[0]
        rest = -frames % self.stride
        mask = torch.ones(frames + rest, dtype=torch.long)
        if rest:
            fbank = torch.cat([fbank, fbank.new_zeros(rest, fbank.shape[1])])
            mask[frames:] = 0
        stacked = fbank.reshape(-1, fbank.shape[1] * self.stride)
        return stacked, mask[self.stride - 1 :: self.stride]


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
