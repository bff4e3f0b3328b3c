"""Lip2Wav-style lip-to-speech: face frames -> 3D-CNN encoder -> 80-band mel.

After Prajwal et al., "Learning Individual Speaking Styles for Accurate Lip to Speech
Synthesis" (CVPR 2020). The encoder is a stack of 3D convolutions with batch norm and
residual blocks that downsample space but never time (stride 1 on the time axis), so
every video frame keeps its own feature vector. Two decoders, chosen by
``Lip2WavConfig.decoder``:

* ``attention`` -- the paper's Tacotron-2 decoder: a prenet over the previous output
  frame, an attention LSTM, location-sensitive attention over the encoder timesteps, a
  decoder LSTM, ``r`` mel frames per step, a convolutional postnet. Teacher forcing in
  training, free running at inference. The clip length is fixed (3 s), so there is no stop
  token: the decoder runs exactly ``ceil(M / r)`` steps.
* ``nonautoregressive`` -- faster: encoder features linearly upsampled in time to the
  ``M`` mel frames, 1-D convolutions and a BiLSTM, a linear layer to 80 bands. One
  parallel pass; good for quick experiments and as a baseline.

Shapes: ``video`` uint8 (B, T, 96, 96, 3) RGB; the mel has ``M = T * mel_frames_per_s /
fps`` frames (240 for 75 frames at 25 fps and Lip2Wav's 200-sample hop at 16 kHz); a
target given to :meth:`Lip2Wav.forward` fixes M (the stored mels have 241 frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.schema import Mel

DECODERS = ("nonautoregressive", "attention")


@dataclass
class Lip2WavConfig:
    """Sizes of the model; the defaults are the paper's (``tiny`` params shrink them)."""

    fps: float = 25.0
    mel_frames_per_s: float = field(default_factory=lambda: Mel().frames_per_second)
    n_mels: int = field(default_factory=lambda: Mel().n_mels)
    decoder: str = "attention"
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    res_blocks: int = 2  # residual blocks after each downsampling conv (none after the stem)
    stem_spatial_stride: int = 2  # first conv's spatial stride (8 in tiny: 64x less work)
    # non-autoregressive decoder
    hidden: int = 256
    conv_layers: int = 3
    # attention decoder (Tacotron 2, as in Lip2Wav's hparams)
    r: int = 2  # mel frames per decoder step
    prenet: list[int] = field(default_factory=lambda: [256, 256])
    attention_rnn: int = 1024
    decoder_rnn: int = 1024
    attention_dim: int = 128
    location_filters: int = 32
    location_kernel: int = 31
    postnet_channels: int = 512
    postnet_layers: int = 5
    dropout: float = 0.5

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> Lip2WavConfig:
        """Pick this model's keys out of a (merged) train config; ignore the rest."""
        names = {f.name for f in fields(cls)}
        made = cls(**{k: v for k, v in cfg.items() if k in names})
        if made.decoder not in DECODERS:
            raise ConfigError(
                f"train.lip2wav.decoder must be one of {DECODERS}, got {made.decoder!r}"
            )
        return made

    def mel_frames(self, video_frames: int) -> int:
        """M for a clip of ``video_frames`` frames."""
        return int(round(video_frames * self.mel_frames_per_s / self.fps))


# --------------------------------------------------------------------------- encoder


class Conv3dBN(nn.Module):
    """Conv3d + BatchNorm3d (+ ReLU), 'same' padding in time."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int], stride, act=True):
        super().__init__()
        pad = tuple(k // 2 for k in kernel)
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=pad, bias=False)
        self.bn = nn.BatchNorm3d(cout)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return F.relu(y) if self.act else y


class Residual3d(nn.Module):
    """Two 3x3x3 conv-BN layers with an identity shortcut (shape preserving)."""

    def __init__(self, ch: int):
        super().__init__()
        self.a = Conv3dBN(ch, ch, (3, 3, 3), 1)
        self.b = Conv3dBN(ch, ch, (3, 3, 3), 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(self.a(x)))


class FaceEncoder(nn.Module):
    """(B, T, H, W, 3) uint8 -> (B, T, C): spatial downsampling only, time kept."""

    def __init__(self, cfg: Lip2WavConfig):
        super().__init__()
        ch = list(cfg.channels)
        s = cfg.stem_spatial_stride
        layers: list[nn.Module] = [Conv3dBN(3, ch[0], (5, 5, 5), (1, s, s))]
        for cin, cout in zip(ch[:-1], ch[1:], strict=True):
            layers.append(Conv3dBN(cin, cout, (3, 3, 3), (1, 2, 2)))
            layers += [Residual3d(cout) for _ in range(cfg.res_blocks)]
        self.net = nn.Sequential(*layers)
        self.out_channels = ch[-1]

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = video.float().div(255.0) if video.dtype == torch.uint8 else video.float()
        x = x.permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)
        x = self.net(x * 2.0 - 1.0)
        return x.mean(dim=(3, 4)).transpose(1, 2)  # global spatial pool -> (B, T, C)


# --------------------------------------------------------------------------- decoders


class NonAutoregressiveDecoder(nn.Module):
    """Encoder features upsampled to M frames -> convs -> BiLSTM -> linear to mel bands."""

    def __init__(self, cfg: Lip2WavConfig, enc_channels: int):
        super().__init__()
        h = cfg.hidden
        self.inp = nn.Linear(enc_channels, h)
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv1d(h, h, 5, padding=2), nn.BatchNorm1d(h), nn.ReLU())
            for _ in range(cfg.conv_layers)
        )
        self.lstm = nn.LSTM(h, h // 2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(h, cfg.n_mels)

    def forward(self, enc: torch.Tensor, mel_frames: int) -> torch.Tensor:
        x = self.inp(enc).transpose(1, 2)  # (B, H, T)
        x = F.interpolate(x, size=mel_frames, mode="linear", align_corners=False)
        for conv in self.convs:
            x = x + conv(x)
        x, _ = self.lstm(x.transpose(1, 2))
        return self.out(x)


class Prenet(nn.Module):
    """Linear+ReLU+dropout layers; dropout stays on at inference, as in Tacotron 2."""

    def __init__(self, cin: int, sizes: list[int], dropout: float):
        super().__init__()
        dims = [cin, *sizes]
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = F.dropout(F.relu(layer(x)), p=self.dropout, training=True)
        return x


class LocationSensitiveAttention(nn.Module):
    """Additive attention whose energies also see the cumulative past alignment."""

    def __init__(self, query_dim: int, memory_dim: int, cfg: Lip2WavConfig):
        super().__init__()
        d = cfg.attention_dim
        self.query = nn.Linear(query_dim, d, bias=False)
        self.memory = nn.Linear(memory_dim, d, bias=False)
        self.location_conv = nn.Conv1d(
            2,
            cfg.location_filters,
            cfg.location_kernel,
            padding=cfg.location_kernel // 2,
            bias=False,
        )
        self.location = nn.Linear(cfg.location_filters, d, bias=False)
        self.v = nn.Linear(d, 1, bias=True)

    def forward(self, query, processed_memory, memory, weights, cum_weights):
        loc = self.location(
            self.location_conv(torch.stack([weights, cum_weights], 1)).transpose(1, 2)
        )
        energies = self.v(torch.tanh(self.query(query).unsqueeze(1) + processed_memory + loc))
        w = torch.softmax(energies.squeeze(-1), dim=1)
        context = torch.bmm(w.unsqueeze(1), memory).squeeze(1)
        return context, w


class AttentionDecoder(nn.Module):
    """Tacotron-2 decoder over encoder timesteps, ``r`` frames per step, with a postnet."""

    def __init__(self, cfg: Lip2WavConfig, enc_channels: int):
        super().__init__()
        self.cfg = cfg
        self.prenet = Prenet(cfg.n_mels, list(cfg.prenet), cfg.dropout)
        self.attention_rnn = nn.LSTMCell(cfg.prenet[-1] + enc_channels, cfg.attention_rnn)
        self.attention = LocationSensitiveAttention(cfg.attention_rnn, enc_channels, cfg)
        self.decoder_rnn = nn.LSTMCell(cfg.attention_rnn + enc_channels, cfg.decoder_rnn)
        self.project = nn.Linear(cfg.decoder_rnn + enc_channels, cfg.n_mels * cfg.r)
        post: list[nn.Module] = []
        chans = [cfg.n_mels] + [cfg.postnet_channels] * (cfg.postnet_layers - 1) + [cfg.n_mels]
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:], strict=True)):
            post += [nn.Conv1d(a, b, 5, padding=2), nn.BatchNorm1d(b)]
            if i < len(chans) - 2:
                post += [nn.Tanh(), nn.Dropout(cfg.dropout)]
        self.postnet = nn.Sequential(*post) if cfg.postnet_layers > 0 else None

    def forward(
        self, enc: torch.Tensor, mel_frames: int, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mel before postnet, mel after postnet), both (B, M, n_mels)."""
        cfg = self.cfg
        b, t, _ = enc.shape
        steps = math.ceil(mel_frames / cfg.r)
        zeros = enc.new_zeros
        h_att, c_att = zeros(b, cfg.attention_rnn), zeros(b, cfg.attention_rnn)
        h_dec, c_dec = zeros(b, cfg.decoder_rnn), zeros(b, cfg.decoder_rnn)
        weights, cum = zeros(b, t), zeros(b, t)
        context = zeros(b, enc.shape[2])
        processed = self.attention.memory(enc)
        teacher = None
        if target is not None:  # the last frame of each previous r-group is the next input
            pad = steps * cfg.r - target.shape[1]
            tgt = F.pad(target, (0, 0, 0, pad)) if pad > 0 else target[:, : steps * cfg.r]
            groups = tgt.reshape(b, steps, cfg.r, cfg.n_mels)[:, :, -1]
            teacher = self.prenet(torch.cat([zeros(b, 1, cfg.n_mels), groups[:, :-1]], 1))
        prev = zeros(b, cfg.n_mels)
        outputs = []
        for step in range(steps):
            x = teacher[:, step] if teacher is not None else self.prenet(prev)
            h_att, c_att = self.attention_rnn(torch.cat([x, context], -1), (h_att, c_att))
            context, weights = self.attention(h_att, processed, enc, weights, cum)
            cum = cum + weights
            h_dec, c_dec = self.decoder_rnn(torch.cat([h_att, context], -1), (h_dec, c_dec))
            frames = self.project(torch.cat([h_dec, context], -1)).view(b, cfg.r, cfg.n_mels)
            outputs.append(frames)
            prev = frames[:, -1].detach() if teacher is None else prev
        mel = torch.cat(outputs, 1)[:, :mel_frames]
        if self.postnet is None:
            return mel, mel
        return mel, mel + self.postnet(mel.transpose(1, 2)).transpose(1, 2)


# --------------------------------------------------------------------------- model


class Lip2Wav(nn.Module):
    """Face video -> mel. :meth:`forward` returns (mel_before_postnet, mel)."""

    def __init__(self, cfg: Lip2WavConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = FaceEncoder(cfg)
        if cfg.decoder == "attention":
            self.decoder: nn.Module = AttentionDecoder(cfg, self.encoder.out_channels)
        else:
            self.decoder = NonAutoregressiveDecoder(cfg, self.encoder.out_channels)

    def forward(
        self, video: torch.Tensor, mel_frames: int | None = None, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if video.ndim != 5 or video.shape[-1] != 3:
            raise ValueError(f"lip2wav expects video (B, T, H, W, 3), got {tuple(video.shape)}")
        m = mel_frames or (
            target.shape[1] if target is not None else self.cfg.mel_frames(video.shape[1])
        )
        enc = self.encoder(video)
        if isinstance(self.decoder, AttentionDecoder):
            return self.decoder(enc, m, target if self.training else None)
        mel = self.decoder(enc, m)
        return mel, mel


def valid_mel_mask(batch: dict[str, torch.Tensor], mel: torch.Tensor, fps: float) -> torch.Tensor:
    """(B, M, 1) float mask of mel frames inside each clip's ``valid_frames`` (all ones if absent).

    Padded tail frames (a clip shorter than 3 s) carry silence that the model cannot see,
    so they are left out of the loss.
    """
    b, m = mel.shape[:2]
    if "valid_frames" not in batch:
        return mel.new_ones(b, m, 1)
    t = batch["video"].shape[1]
    valid = batch["valid_frames"].to(mel.device).float().view(b, 1) * (m / t)
    idx = torch.arange(m, device=mel.device).float().view(1, m)
    return (idx < valid.ceil()).float().unsqueeze(-1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over unmasked frames."""
    total = (pred - target).abs().mul(mask).sum()
    return total / mask.sum().clamp_min(1.0) / pred.shape[-1]


def build(cfg: dict[str, Any]) -> Lip2Wav:
    """Model from a merged train config (see :func:`lipflow.models.registry.model_config`)."""
    return Lip2Wav(Lip2WavConfig.from_dict(cfg))


def loss(model: Lip2Wav, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """L1 on mels (before and after the postnet for the attention decoder, as Tacotron 2)."""
    target = batch["mel"].float()
    before, after = model(batch["video"], target=target)
    mask = valid_mel_mask(batch, target, model.cfg.fps)
    out = masked_l1(after, target, mask)
    if model.cfg.decoder == "attention" and model.decoder.postnet is not None:
        out = out + masked_l1(before, target, mask)
    return out


@torch.no_grad()
def predict(model: Lip2Wav, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Generated mel (B, M, n_mels), free running, M matching the batch's mel if present."""
    m = batch["mel"].shape[1] if "mel" in batch else None
    return model(batch["video"], mel_frames=m)[1]
