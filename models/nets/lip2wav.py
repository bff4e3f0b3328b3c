"""Lip2Wav as published: face frames -> 3D-CNN + BiLSTM encoder -> Tacotron-2 decoder -> mel.

After Prajwal et al., "Learning Individual Speaking Styles for Accurate Lip to Speech
Synthesis" (CVPR 2020), read layer by layer from its code (Rudrabha/Lip2Wav,
``synthesizer/hparams.py``, ``synthesizer/presets/<speaker>.json``,
``synthesizer/models/{tacotron,modules,attention,architecture_wrappers,helpers}.py``).

**Encoder** (``EncoderConvolutions3D`` + ``EncoderRNN``). ``conv_blocks`` blocks; block
``i`` has ``init_filters * 2**i`` channels: a 3D conv (kernel 5 in the first block, 3
after) with spatial stride 2, then ``res_blocks`` (2) residual 3x3x3 convs; the last
block ends with a 3x3x3 conv of spatial stride 3. Every conv has a bias and is followed by
batch norm and ReLU; time is never strided, so every frame keeps its feature vector. The
output is flattened per frame (``H * W * C``, 1x1 for the published face sizes) and read
by a one-layer BiLSTM with zoneout (``encoder_lstm`` units per direction). The speaker
presets are the original's (:data:`SPEAKER_PRESETS`): ``chem`` 96-px faces, channels
24*2^i over 5 blocks (24..384), BiLSTM 384; the 48-px speakers 32..256 over 4 blocks,
BiLSTM 256. A zero "speaker embedding" of ``speaker_embedding`` (256) dims is appended to
every encoder step, exactly as the original's feeder does (an SV2TTS leftover: always
zeros, so the weights that read it are dead); it is kept so the parameter count is the
original's, and the tiny preset sets it to 0.

**Decoder** (``decoder: attention``, the default). Rayhane-mamah's Tacotron-2 layout,
which Lip2Wav's code is, not NVIDIA's: a prenet (2 x 256, ReLU, dropout 0.5 also at
inference) over the previous output frame, concatenated with the previous context,
feeds a stack of ``decoder_layers`` (2) zoneout LSTMs (1024; 256 for ``dl``); the last
LSTM's output queries location-sensitive attention (128-d, 32 filters of 31 over the
cumulative alignments, softmax, padded encoder steps masked) and, with the new context,
is projected to ``r`` (2) mel frames. A 5-layer conv postnet (512 channels, kernel 5,
batch norm, tanh, dropout) and a linear projection add a residual. Why Rayhane's and not
NVIDIA's (an attention LSTM before the attention, a decoder LSTM after it): the sizes
and the parameter count then match the published model exactly, and scheduled teacher
forcing is the original's. The original's stop-token layer is commented out (windows
have a fixed length); ``stop_token: true`` adds it back with a BCE term.

**Training** (:func:`train_step`): a random window of ``window_seconds`` (3 s: 90 frames
at 30 fps, 75 at 25) is cut from each clip afresh every step; teacher forcing has ratio 1
until ``tf_start_decay`` (29k) steps, then decays by a cosine to 0 over
``tf_decay_steps`` (130k), one coin per decoder step for the whole batch, as the
original's ``TacoTrainingHelper``; Adam (0.9, 0.999, eps 1e-6) whose learning rate
``lr`` (1e-3) halves every 50k steps after step 150k, never below 1e-5; gradients clipped
to norm 1; loss = MSE before + MSE after the postnet + L1 before the postnet + 1e-7 * L2
of the non-RNN, non-bias, non-projection weights (``tacotron.py``'s ``add_loss``). The
global step lives in the model (a buffer), so a resumed run continues the schedules.

CPU-budget aids (none of them the original's; ``full`` keeps the published model): the
``tiny`` preset decays forcing from step 0 over 800 steps (ratio 1 until 29k is never left
in CPU minutes, and a decoder only ever fed true frames cannot free-run) and adds a
diagonal guided-attention loss (Tachibana et al. 2017, ``guided_attention`` 1.0; without
it the tiny attention stayed uniform, max weight 1/T, after ~700 steps on GRID s1, with
it diagonal after ~900). Opt-in: the batch-norm momentum (``bn_momentum``). The
tiny preset also recomputes the encoder's batch-norm statistics after each epoch
(:func:`recalibrate`, ``precise_bn_batches``): in CPU minutes the running statistics lag
the weights and the encoder in eval mode fed the decoder features far from the
train-mode ones. On GRID s1 in 10 CPU minutes the tiny model with these aids beats the
per-position mean mel on L1, corr2, STOI and WER (README, learning check).

``decoder: nonautoregressive`` keeps lipflow's faster option: encoder features upsampled
in time to the ``M`` mel frames, 1-D convolutions, a BiLSTM and a linear layer, one
parallel pass (no postnet, no teacher forcing).

Shapes: ``video`` uint8 (B, T, F, F, 3) RGB with ``F = face_size_px``; the mel has
``M = T * mel_frames_per_s / fps`` frames (240 for 75 frames at 25 fps with Lip2Wav's
200-sample hop at 16 kHz); a target given to :meth:`Lip2Wav.forward` fixes M.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.schema import Mel

DECODERS = ("attention", "nonautoregressive")

#: The original's per-speaker presets (Rudrabha/Lip2Wav ``synthesizer/presets/*.json``):
#: encoder plan, LSTM sizes, teacher-forcing schedule; every other size is ``hparams.py``'s
#: and the same for all five.
SPEAKER_PRESETS: dict[str, dict[str, Any]] = {
    "chem": {"face_size_px": 96, "init_filters": 24, "conv_blocks": 5, "encoder_lstm": 384,
             "decoder_lstm": 1024, "tf_start_decay": 29000, "tf_decay_steps": 130000},
    "chess": {"face_size_px": 48, "init_filters": 32, "conv_blocks": 4, "encoder_lstm": 256,
              "decoder_lstm": 1024, "tf_start_decay": 75000, "tf_decay_steps": 200000},
    "dl": {"face_size_px": 48, "init_filters": 32, "conv_blocks": 4, "encoder_lstm": 256,
           "decoder_lstm": 256, "tf_start_decay": 29000, "tf_decay_steps": 100000},
    "eh": {"face_size_px": 48, "init_filters": 32, "conv_blocks": 4, "encoder_lstm": 256,
           "decoder_lstm": 1024, "tf_start_decay": 29000, "tf_decay_steps": 100000},
    "hs": {"face_size_px": 48, "init_filters": 32, "conv_blocks": 4, "encoder_lstm": 256,
           "decoder_lstm": 1024, "tf_start_decay": 29000, "tf_decay_steps": 100000},
}

#: batch norm as TensorFlow's ``tf.layers.batch_normalization`` defaults (the original's:
#: moving averages with decay 0.99, i.e. PyTorch momentum 0.01); ``bn_momentum`` overrides
BN_MOMENTUM = 0.01
BN_EPS = 1e-3


@dataclass
class Lip2WavConfig:
    """Sizes and schedules; the defaults are the original's ``chem`` speaker."""

    fps: float = 25.0
    mel_frames_per_s: float = field(default_factory=lambda: Mel().frames_per_second)
    n_mels: int = field(default_factory=lambda: Mel().n_mels)
    decoder: str = "attention"
    speaker: str = "chem"  # which SPEAKER_PRESETS entry sets the keys below first
    # encoder
    face_size_px: int = 96
    init_filters: int = 24
    conv_blocks: int = 5
    res_blocks: int = 2
    stem_spatial_stride: int = 2  # the first conv's spatial stride (tiny: 8)
    last_spatial_stride: int = 3
    encoder_lstm: int = 384
    zoneout: float = 0.1
    speaker_embedding: int = 256
    # non-autoregressive decoder
    hidden: int = 256
    conv_layers: int = 3
    # attention decoder
    r: int = 2
    prenet: list[int] = field(default_factory=lambda: [256, 256])
    decoder_layers: int = 2
    decoder_lstm: int = 1024
    attention_dim: int = 128
    location_filters: int = 32
    location_kernel: int = 31
    postnet_channels: int = 512
    postnet_layers: int = 5
    postnet_kernel: int = 5
    dropout: float = 0.5
    stop_token: bool = False
    # training
    window_seconds: float = 3.0
    tf_start_decay: int = 29000
    tf_decay_steps: int = 130000
    tf_init_ratio: float = 1.0
    tf_final_ratio: float = 0.0
    lr: float = 1e-3
    lr_start_decay: int = 150000
    lr_decay_steps: int = 50000
    lr_decay_rate: float = 0.5
    lr_final: float = 1e-5
    adam_eps: float = 1e-6
    reg_weight: float = 1e-7
    guided_attention: float = 0.0  # opt-in diagonal attention loss weight (not the original's)
    guided_attention_sigma: float = 0.2
    # batch-norm running-statistics momentum (the original's 0.01). A knob because in a
    # CPU-minutes run the encoder in eval mode is far off its train mode (GRID s1, 674
    # steps: free-running mel L1 1.10 with the encoder in eval mode, 0.65 in train mode);
    # 0.1 alone did not close that gap in a 5-CPU-minute run
    bn_momentum: float = BN_MOMENTUM
    # precise batch norm (0 = off, the original): after each epoch the encoder's running
    # statistics are recomputed from this many training batches with the weights fixed
    precise_bn_batches: int = 0
    seed: int = 0

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> Lip2WavConfig:
        """The speaker preset, then this model's keys of a (merged) train config on top."""
        names = {f.name for f in fields(cls)}
        speaker = cfg.get("speaker") or cls.speaker
        if speaker not in SPEAKER_PRESETS:
            raise ConfigError(f"train.lip2wav.speaker must be one of {tuple(SPEAKER_PRESETS)}, "
                              f"got {speaker!r}")
        values = {**SPEAKER_PRESETS[speaker], "speaker": speaker}
        values.update({k: v for k, v in cfg.items() if k in names and v is not None})
        made = cls(**values)
        if made.decoder not in DECODERS:
            raise ConfigError(
                f"train.lip2wav.decoder must be one of {DECODERS}, got {made.decoder!r}"
            )
        return made

    def mel_frames(self, video_frames: int) -> int:
        """M for a clip of ``video_frames`` frames."""
        return int(round(video_frames * self.mel_frames_per_s / self.fps))

    @property
    def window_frames(self) -> int:
        """Training window in video frames (90 at 30 fps, 75 at 25)."""
        return int(round(self.window_seconds * self.fps))


# --------------------------------------------------------------------------- zoneout LSTM


class ZoneoutLSTMCell(nn.Module):
    """TensorFlow's ``LSTMCell`` (one bias, forget bias 1) wrapped in zoneout.

    Zoneout (Krueger et al. 2016), as the original's ``ZoneoutLSTMCell``: in training each
    unit of the cell and hidden state keeps its previous value with probability ``z``; at
    inference the new state is ``(1 - z) * new + z * previous``. The cell's output is the
    un-zoned new ``h``; the zoned state is carried to the next step.
    """

    def __init__(self, input_size: int, hidden: int, zoneout: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.zoneout = zoneout
        self.linear = nn.Linear(input_size + hidden, 4 * hidden)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, c = state
        i, j, f, o = self.linear(torch.cat([x, h], -1)).chunk(4, -1)
        new_c = c * torch.sigmoid(f + 1.0) + torch.sigmoid(i) * torch.tanh(j)
        new_h = torch.tanh(new_c) * torch.sigmoid(o)
        z = self.zoneout
        if z <= 0:
            return new_h, (new_h, new_c)
        if self.training:
            keep_c = torch.rand_like(new_c) < z
            keep_h = torch.rand_like(new_h) < z
            return new_h, (torch.where(keep_h, h, new_h), torch.where(keep_c, c, new_c))
        return new_h, ((1 - z) * new_h + z * h, (1 - z) * new_c + z * c)

    def zero_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = like.new_zeros(batch, self.hidden)
        return zeros, zeros


class BiZoneoutLSTM(nn.Module):
    """One bidirectional zoneout-LSTM layer over (B, T, D) with per-sequence lengths.

    The backward cell starts at each sequence's last valid step, and outputs past a
    sequence's length are zero (TensorFlow's ``bidirectional_dynamic_rnn``), so padded
    frames never reach the valid ones.
    """

    def __init__(self, input_size: int, hidden: int, zoneout: float) -> None:
        super().__init__()
        self.fw = ZoneoutLSTMCell(input_size, hidden, zoneout)
        self.bw = ZoneoutLSTMCell(input_size, hidden, zoneout)

    @staticmethod
    def _run(cell: ZoneoutLSTMCell, x: torch.Tensor) -> torch.Tensor:
        state = cell.zero_state(x.shape[0], x)
        outs = []
        for t in range(x.shape[1]):
            out, state = cell(x[:, t], state)
            outs.append(out)
        return torch.stack(outs, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        idx = torch.arange(t, device=x.device).view(1, t)
        valid = idx < lengths.view(b, 1)
        # reverse each sequence within its own length: step k reads frame length-1-k
        rev = torch.where(valid, lengths.view(b, 1) - 1 - idx, idx)
        gather = rev.unsqueeze(-1).expand(b, t, x.shape[2])
        fw = self._run(self.fw, x)
        bw = self._run(self.bw, x.gather(1, gather))
        bw = bw.gather(1, rev.unsqueeze(-1).expand(b, t, bw.shape[2]))
        return torch.cat([fw, bw], -1) * valid.unsqueeze(-1).to(x.dtype)


# --------------------------------------------------------------------------- encoder


class Conv3dBN(nn.Module):
    """Conv3d (with bias) + batch norm (+ the input, for a residual conv) + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: tuple[int, int, int],
                 residual: bool = False, bn_momentum: float = BN_MOMENTUM) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        self.bn = nn.BatchNorm3d(cout, momentum=bn_momentum, eps=BN_EPS)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return F.relu(y + x if self.residual else y)


def _spatial_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class FaceEncoder(nn.Module):
    """(B, T, F, F, 3) uint8 -> (B, T, 2 * encoder_lstm + speaker_embedding)."""

    def __init__(self, cfg: Lip2WavConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        cin, c, size = 3, cfg.init_filters, cfg.face_size_px
        for i in range(cfg.conv_blocks):
            k = 5 if i == 0 else 3
            s = cfg.stem_spatial_stride if i == 0 else 2
            layers.append(Conv3dBN(cin, c, k, (1, s, s), bn_momentum=cfg.bn_momentum))
            size = _spatial_out(size, k, s)
            layers += [Conv3dBN(c, c, 3, (1, 1, 1), residual=True, bn_momentum=cfg.bn_momentum)
                       for _ in range(cfg.res_blocks)]
            cin = c
            if i == cfg.conv_blocks - 1:
                s = cfg.last_spatial_stride
                layers.append(Conv3dBN(c, c, 3, (1, s, s), bn_momentum=cfg.bn_momentum))
                size = _spatial_out(size, 3, s)
            c *= 2
        self.convs = nn.ModuleList(layers)
        self.flat = size * size * cin
        self.lstm = BiZoneoutLSTM(self.flat, cfg.encoder_lstm, cfg.zoneout)
        self.out_channels = 2 * cfg.encoder_lstm + cfg.speaker_embedding

    def forward(self, video: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        f = self.cfg.face_size_px
        if video.shape[2:4] != (f, f):
            raise ConfigError(
                f"lip2wav ({self.cfg.speaker} preset) reads {f}x{f} faces, got "
                f"{video.shape[2]}x{video.shape[3]}: set train.lip2wav.speaker (or "
                f"face_size_px) to the store's face size")
        x = video.float().div(255.0) if video.dtype == torch.uint8 else video.float()
        b, t = x.shape[:2]
        keep = (torch.arange(t, device=x.device).view(1, t) < lengths.view(b, 1)).to(x.dtype)
        x = x.permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W)
        for layer in self.convs:
            # zero padded frames before every conv: a valid frame then sees exactly the
            # zero padding an unpadded clip of its length would give it
            x = layer(x * keep.view(b, 1, t, 1, 1))
        x = x.permute(0, 2, 1, 3, 4).reshape(b, t, self.flat)
        out = self.lstm(x, lengths)
        if self.cfg.speaker_embedding:
            out = torch.cat([out, out.new_zeros(b, t, self.cfg.speaker_embedding)], -1)
        return out


# --------------------------------------------------------------------------- decoders


class NonAutoregressiveDecoder(nn.Module):
    """Encoder features upsampled to M frames -> convs -> BiLSTM -> linear to mel bands."""

    def __init__(self, cfg: Lip2WavConfig, enc_channels: int) -> None:
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

    def __init__(self, cin: int, sizes: list[int], dropout: float) -> None:
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
    """Additive attention whose energies also see the cumulative alignments (Chorowski 2015).

    ``energy = v . tanh(W_keys m + W_query q + W_loc conv(cum) + b)``, padded memory steps
    masked to -inf before the softmax (the original's ``mask_encoder=True``).
    """

    def __init__(self, query_dim: int, memory_dim: int, cfg: Lip2WavConfig) -> None:
        super().__init__()
        d = cfg.attention_dim
        self.query = nn.Linear(query_dim, d, bias=False)
        self.memory = nn.Linear(memory_dim, d, bias=False)
        self.location_conv = nn.Conv1d(1, cfg.location_filters, cfg.location_kernel,
                                       padding=cfg.location_kernel // 2, bias=True)
        self.location = nn.Linear(cfg.location_filters, d, bias=False)
        self.v = nn.Parameter(torch.empty(d))
        self.b = nn.Parameter(torch.zeros(d))
        bound = math.sqrt(6.0 / (d + 1))  # xavier uniform of a (d,) vector, as TF's
        nn.init.uniform_(self.v, -bound, bound)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor,
                cumulative: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.location(self.location_conv(cumulative.unsqueeze(1)).transpose(1, 2))
        energy = (torch.tanh(keys + self.query(query).unsqueeze(1) + loc + self.b)
                  * self.v).sum(-1)
        weights = torch.softmax(energy.masked_fill(~mask, float("-inf")), dim=1)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
        return context, weights


class Postnet(nn.Module):
    """``layers`` conv1d + batch norm (tanh, none on the last) + dropout, then a projection
    from ``channels`` back to the mel bands: the residual added to the decoder's mel."""

    def __init__(self, cfg: Lip2WavConfig) -> None:
        super().__init__()
        k, ch = cfg.postnet_kernel, cfg.postnet_channels
        dims = [cfg.n_mels] + [ch] * cfg.postnet_layers
        self.convs = nn.ModuleList(nn.Conv1d(a, b, k, padding=k // 2)
                                   for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.bns = nn.ModuleList(nn.BatchNorm1d(ch, momentum=cfg.bn_momentum, eps=BN_EPS)
                                 for _ in self.convs)
        self.projection = nn.Linear(ch, cfg.n_mels)
        self.dropout = cfg.dropout

    def forward(self, mel: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(B, M, n_mels) -> residual (B, M, n_mels); ``keep`` (B, M) zeroes padded frames
        before every conv, as the encoder does."""
        x = mel.transpose(1, 2)
        last = len(self.convs) - 1
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            x = bn(conv(x * keep.unsqueeze(1)))
            x = x if i == last else torch.tanh(x)
            x = F.dropout(x, p=self.dropout, training=self.training)
        return self.projection(x.transpose(1, 2))


@dataclass
class DecoderOutput:
    """What the attention decoder returns: mels before and after the postnet, stop
    logits (``None`` without a stop token) and the alignments (B, steps, T)."""

    before: torch.Tensor
    after: torch.Tensor
    stop_logits: torch.Tensor | None
    alignments: torch.Tensor


class AttentionDecoder(nn.Module):
    """Rayhane-mamah's Tacotron-2 decoder (Lip2Wav's): ``r`` frames a step, then a postnet."""

    def __init__(self, cfg: Lip2WavConfig, memory_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.prenet = Prenet(cfg.n_mels, list(cfg.prenet), cfg.dropout)
        dims = [cfg.prenet[-1] + memory_dim] + [cfg.decoder_lstm] * (cfg.decoder_layers - 1)
        self.lstm = nn.ModuleList(ZoneoutLSTMCell(d, cfg.decoder_lstm, cfg.zoneout)
                                  for d in dims)
        self.attention = LocationSensitiveAttention(cfg.decoder_lstm, memory_dim, cfg)
        self.frame_projection = nn.Linear(cfg.decoder_lstm + memory_dim, cfg.n_mels * cfg.r)
        self.stop_projection = (nn.Linear(cfg.decoder_lstm + memory_dim, cfg.r)
                                if cfg.stop_token else None)
        self.postnet = Postnet(cfg) if cfg.postnet_layers > 0 else None

    def forward(self, memory: torch.Tensor, mask: torch.Tensor, mel_frames: int,
                mel_valid: torch.Tensor, target: torch.Tensor | None = None,
                teacher_forcing: float = 1.0, generator: torch.Generator | None = None
                ) -> DecoderOutput:
        """Decode ``ceil(M / r)`` steps. With a ``target``, each step's input is the target's
        last frame of the previous group with probability ``teacher_forcing`` (one coin
        per step for the whole batch), else the decoder's own last frame."""
        cfg = self.cfg
        b, t, _ = memory.shape
        steps = math.ceil(mel_frames / cfg.r)
        memory = memory * mask.unsqueeze(-1).to(memory.dtype)
        keys = self.attention.memory(memory)
        states = [cell.zero_state(b, memory) for cell in self.lstm]
        context = memory.new_zeros(b, memory.shape[2])
        cumulative = memory.new_zeros(b, t)
        frame = memory.new_zeros(b, cfg.n_mels)  # the <GO> frame
        forced = None
        if target is not None:
            pad = steps * cfg.r - target.shape[1]
            tgt = F.pad(target, (0, 0, 0, pad)) if pad > 0 else target[:, : steps * cfg.r]
            forced = tgt[:, cfg.r - 1 :: cfg.r]  # the last frame of each r-group
            coins = torch.rand(steps, generator=generator) < teacher_forcing
        frames, stops, aligns = [], [], []
        for step in range(steps):
            x = torch.cat([self.prenet(frame), context], -1)
            for i, cell in enumerate(self.lstm):
                x, states[i] = cell(x, states[i])
            context, weights = self.attention(x, keys, memory, cumulative, mask)
            cumulative = cumulative + weights
            projected = torch.cat([x, context], -1)
            out = self.frame_projection(projected)
            frames.append(out.view(b, cfg.r, cfg.n_mels))
            aligns.append(weights)
            if self.stop_projection is not None:
                stops.append(self.stop_projection(projected))
            if forced is not None and bool(coins[step]):
                frame = forced[:, step]
            else:
                frame = out[:, -cfg.n_mels:]
        before = torch.cat(frames, 1)[:, :mel_frames]
        after = before
        if self.postnet is not None:
            keep = (torch.arange(mel_frames, device=before.device).view(1, -1)
                    < mel_valid.view(b, 1)).to(before.dtype)
            after = before + self.postnet(before, keep)
        stop = torch.cat(stops, 1)[:, :mel_frames] if stops else None
        return DecoderOutput(before, after, stop, torch.stack(aligns, 1))


# --------------------------------------------------------------------------- model


class Lip2Wav(nn.Module):
    """Face video -> mel. :meth:`forward` returns (mel_before_postnet, mel)."""

    def __init__(self, cfg: Lip2WavConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = FaceEncoder(cfg)
        if cfg.decoder == "attention":
            self.decoder: nn.Module = AttentionDecoder(cfg, self.encoder.out_channels)
        else:
            self.decoder = NonAutoregressiveDecoder(cfg, self.encoder.out_channels)
        # the global training step: the teacher-forcing and learning-rate schedules read it,
        # and it is saved with the weights, so a resumed run continues both
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def parameter_groups(self) -> dict[str, int]:
        """Parameters by the original's parts (what ``lipflow models`` prints)."""
        def count(*modules: nn.Module | None) -> int:
            return sum(p.numel() for m in modules if m is not None for p in m.parameters())

        groups = {"encoder_convs": count(self.encoder.convs),
                  "encoder_lstm": count(self.encoder.lstm)}
        d = self.decoder
        if isinstance(d, AttentionDecoder):
            groups.update(prenet=count(d.prenet), decoder_lstm=count(d.lstm),
                          attention=count(d.attention), frame_projection=count(d.frame_projection),
                          stop_projection=count(d.stop_projection), postnet=count(d.postnet))
        else:
            groups["decoder"] = count(d)
        return {k: v for k, v in groups.items() if v}

    def decode(self, video: torch.Tensor, mel_frames: int | None = None,
               target: torch.Tensor | None = None, valid_frames: torch.Tensor | None = None,
               teacher_forcing: float = 1.0, generator: torch.Generator | None = None
               ) -> DecoderOutput:
        """Every output of one pass; ``target`` is used (teacher forcing) only in training."""
        if video.ndim != 5 or video.shape[-1] != 3:
            raise ValueError(f"lip2wav expects video (B, T, H, W, 3), got {tuple(video.shape)}")
        b, t = video.shape[:2]
        m = mel_frames or (target.shape[1] if target is not None else self.cfg.mel_frames(t))
        lengths = (valid_frames.to(video.device).long().clamp(1, t) if valid_frames is not None
                   else torch.full((b,), t, device=video.device, dtype=torch.long))
        enc = self.encoder(video, lengths)
        if isinstance(self.decoder, AttentionDecoder):
            mask = torch.arange(t, device=video.device).view(1, t) < lengths.view(b, 1)
            mel_valid = valid_mel_frames(lengths, t, m)
            return self.decoder(enc, mask, m, mel_valid, target if self.training else None,
                                teacher_forcing, generator)
        mel = self.decoder(enc, m)
        return DecoderOutput(mel, mel, None, enc.new_zeros(b, 0, t))

    def forward(self, video: torch.Tensor, mel_frames: int | None = None,
                target: torch.Tensor | None = None, valid_frames: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.decode(video, mel_frames, target, valid_frames)
        return out.before, out.after


def valid_mel_frames(lengths: torch.Tensor, video_frames: int, mel_frames: int) -> torch.Tensor:
    """(B,) mel frames inside each clip's valid video frames (``ceil(valid * M / T)``)."""
    return (lengths.float() * (mel_frames / video_frames)).ceil().long()


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


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over unmasked frames."""
    total = (pred - target).square().mul(mask).sum()
    return total / mask.sum().clamp_min(1.0) / pred.shape[-1]


def regularised(model: Lip2Wav) -> list[torch.Tensor]:
    """The tensors the original's L2 term covers.

    ``tacotron.py`` regularises every trainable variable except biases, RNN/LSTM weights
    and the ``*_projection`` layers (frame, postnet and stop projections and the attention's
    ``v``); batch-norm scales and offsets are regularised (TensorFlow names them gamma and
    beta). Here: every conv and linear weight and every batch-norm parameter, outside the
    zoneout LSTMs and the projections.
    """
    skip: set[int] = set()
    for module in model.modules():
        if isinstance(module, ZoneoutLSTMCell | nn.LSTM):
            skip.update(id(p) for p in module.parameters())
    decoder = model.decoder
    if isinstance(decoder, AttentionDecoder):
        for proj in (decoder.frame_projection, decoder.stop_projection,
                     decoder.postnet.projection if decoder.postnet is not None else None):
            if proj is not None:
                skip.update(id(p) for p in proj.parameters())
        skip.update({id(decoder.attention.v), id(decoder.attention.b)})
    out: list[torch.Tensor] = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            out += [p for p in (module.weight, module.bias) if p is not None]
        elif isinstance(module, nn.Conv1d | nn.Conv3d | nn.Linear):
            out.append(module.weight)
    return [p for p in out if id(p) not in skip]


def build(cfg: dict[str, Any]) -> Lip2Wav:
    """Model from a merged train config (see :func:`lipflow.models.registry.model_config`)."""
    return Lip2Wav(Lip2WavConfig.from_dict(cfg))


def loss(model: Lip2Wav, batch: dict[str, torch.Tensor], teacher_forcing: float = 1.0,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """The original's loss, over the valid frames: MSE before + MSE after the postnet +
    L1 before it + ``reg_weight`` * L2 (+ stop-token BCE with ``stop_token``).

    The non-autoregressive decoder has no postnet: MSE + L1 on its mel (+ the L2 term).
    """
    return loss_terms(model, batch, teacher_forcing, generator)["loss"]


def loss_terms(model: Lip2Wav, batch: dict[str, torch.Tensor], teacher_forcing: float = 1.0,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Every term of :func:`loss` by name, and their sum as ``loss``."""
    target = batch["mel"].float()
    out = model.decode(batch["video"], target=target, valid_frames=batch.get("valid_frames"),
                       teacher_forcing=teacher_forcing, generator=generator)
    mask = valid_mel_mask(batch, target, model.cfg.fps)
    terms = {"mse_before": masked_mse(out.before, target, mask),
             "l1_before": masked_l1(out.before, target, mask)}
    if out.after is not out.before:
        terms["mse_after"] = masked_mse(out.after, target, mask)
    reg = sum(p.square().sum() for p in regularised(model)) / 2
    terms["l2"] = model.cfg.reg_weight * reg
    if model.cfg.guided_attention > 0 and out.alignments.shape[1] > 0:
        lengths = (batch["valid_frames"].to(target.device).long()
                   if "valid_frames" in batch else None)
        terms["guided_attention"] = model.cfg.guided_attention * guided_attention_loss(
            out.alignments, mask[..., 0].sum(1), lengths, model.cfg.r,
            model.cfg.guided_attention_sigma)
    if out.stop_logits is not None:
        # 1 from the last valid frame on, as Tacotron's <stop> targets
        valid = mask[..., 0].sum(1, keepdim=True)
        idx = torch.arange(target.shape[1], device=target.device).view(1, -1)
        stop_target = (idx >= valid - 1).float()
        terms["stop"] = F.binary_cross_entropy_with_logits(out.stop_logits, stop_target)
    terms["loss"] = sum(terms.values())
    return terms


def guided_attention_loss(alignments: torch.Tensor, mel_valid: torch.Tensor,
                          lengths: torch.Tensor | None, r: int, sigma: float) -> torch.Tensor:
    """Tachibana et al. (2017)'s guided attention: ``sum_t A[n, t] * W[n, t]`` averaged
    over each clip's valid decoder steps ``n < N`` (``N = ceil(valid mel frames / r)``),
    with ``W = 1 - exp(-(n / N - t / T)^2 / (2 sigma^2))`` over its ``T`` valid encoder
    frames: the attention mass off the diagonal, in [0, 1] whatever the lengths.

    Why: lip video and speech are monotonic and nearly linear in time, so a near-diagonal
    alignment is known in advance; penalising attention far from it lets a small model
    align in hundreds of steps instead of the tens of thousands the plain attention needs
    (an opt-in aid for CPU budgets, ``train.lip2wav.guided_attention``; the original has
    no such term).
    """
    b, steps, t = alignments.shape
    n_valid = (mel_valid.to(alignments.device).float() / r).ceil().clamp_min(1).view(b, 1, 1)
    t_valid = (lengths.float() if lengths is not None
               else alignments.new_full((b,), float(t))).clamp_min(1).view(b, 1, 1)
    n = torch.arange(steps, device=alignments.device).float().view(1, steps, 1)
    k = torch.arange(t, device=alignments.device).float().view(1, 1, t)
    weight = 1.0 - torch.exp(-((n + 0.5) / n_valid - (k + 0.5) / t_valid).square()
                             / (2 * sigma**2))
    valid = ((n < n_valid) & (k < t_valid)).to(alignments.dtype)
    rows = (n < n_valid).to(alignments.dtype).sum() * 1.0
    return (alignments * weight * valid).sum() / rows.clamp_min(1.0)


@torch.no_grad()
def predict(model: Lip2Wav, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Generated mel (B, M, n_mels), free running, M matching the batch's mel if present."""
    m = batch["mel"].shape[1] if "mel" in batch else None
    return model.decode(batch["video"], mel_frames=m,
                        valid_frames=batch.get("valid_frames")).after


# --------------------------------------------------------------------------- training


def teacher_forcing_ratio(step: int, cfg: Lip2WavConfig) -> float:
    """The original's scheduled ratio: ``tf_init_ratio`` before ``tf_start_decay``, then
    TensorFlow's ``cosine_decay`` to ``tf_final_ratio`` over ``tf_decay_steps``."""
    if step < cfg.tf_start_decay:
        return cfg.tf_init_ratio
    done = min(step - cfg.tf_start_decay, cfg.tf_decay_steps) / max(cfg.tf_decay_steps, 1)
    cosine = 0.5 * (1 + math.cos(math.pi * done))
    alpha = cfg.tf_final_ratio / cfg.tf_init_ratio if cfg.tf_init_ratio else 0.0
    return cfg.tf_init_ratio * ((1 - alpha) * cosine + alpha)


def learning_rate(step: int, cfg: Lip2WavConfig) -> float:
    """The original's ``_learning_rate_decay``: ``lr * rate ** ((step - start) / steps)``
    (not staircase), clipped to ``[lr_final, lr]``."""
    lr = cfg.lr * cfg.lr_decay_rate ** ((step - cfg.lr_start_decay) / cfg.lr_decay_steps)
    return min(max(lr, cfg.lr_final), cfg.lr)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The RNG of one training step: windows and teacher-forcing coins are a function of
    ``(seed, step)``, so they differ every step and repeat under the same seed."""
    state = np.random.SeedSequence([int(seed) % 2**63, int(step)]).generate_state(1)
    return torch.Generator().manual_seed(int(state[0]))


def random_windows(batch: dict[str, torch.Tensor], window_frames: int, fps: float,
                   mel_frames_per_s: float, generator: torch.Generator
                   ) -> dict[str, torch.Tensor]:
    """A random ``window_frames`` window of each clip's valid frames, with its mel span.

    The start is uniform over ``0 .. valid - window`` (0 for a clip shorter than the
    window, which keeps its padding, masked); the mel span follows the dataset's floor
    rule (:mod:`lipflow.models.dataset`). A clip no longer than the window is returned
    whole. Only ``video``, ``mel`` and ``valid_frames`` are kept.
    """
    video, mel = batch["video"], batch["mel"]
    b, t = video.shape[:2]
    valid = (batch["valid_frames"].long().cpu() if "valid_frames" in batch
             else torch.full((b,), t, dtype=torch.long))
    if t <= window_frames:
        return {"video": video, "mel": mel, "valid_frames": valid.to(video.device)}
    per = Fraction(str(mel_frames_per_s)).limit_denominator(10_000) / Fraction(str(fps))
    length = window_frames * per.numerator // per.denominator
    highs = (valid - window_frames).clamp_min(0)
    starts = [int(torch.randint(0, int(h) + 1, (1,), generator=generator)) for h in highs]
    videos, mels = [], []
    for i, s in enumerate(starts):
        first = s * per.numerator // per.denominator
        videos.append(video[i, s:s + window_frames])
        piece = mel[i, first:first + length]
        if piece.shape[0] < length:  # past the stored mel's end: repeat its last frame
            piece = torch.cat([piece, piece[-1:].expand(length - piece.shape[0], -1)])
        mels.append(piece)
    new_valid = (valid - torch.tensor(starts)).clamp(0, window_frames)
    return {"video": torch.stack(videos), "mel": torch.stack(mels),
            "valid_frames": new_valid.to(video.device)}


def optimisers(model: Lip2Wav, cfg: dict[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """Adam with the original's betas (0.9, 0.999) and epsilon (1e-6)."""
    c = model.cfg
    return {"model": torch.optim.Adam(model.parameters(), lr=learning_rate(int(model.step), c),
                                      betas=(0.9, 0.999), eps=c.adam_eps,
                                      weight_decay=float(cfg.get("weight_decay") or 0.0))}


def train_step(model: Lip2Wav, batch: dict[str, torch.Tensor],
               optimisers: dict[str, torch.optim.Optimizer], ctx: Any) -> dict[str, float]:
    """One step: learning rate and teacher-forcing ratio of the global step, a fresh random
    window per clip, the loss, clipped Adam (:func:`single_loss_step`); then step += 1."""
    from lipflow.models.training_step import single_loss_step

    c = model.cfg
    step = int(model.step)
    lr = learning_rate(step, c)
    for optimiser in optimisers.values():
        for group in optimiser.param_groups:
            group["lr"] = lr
    ratio = teacher_forcing_ratio(step, c)
    generator = step_generator(c.seed, step)
    window = random_windows(batch, c.window_frames, c.fps, c.mel_frames_per_s, generator)
    figures = single_loss_step(model, window, optimisers, ctx,
                               partial(loss, teacher_forcing=ratio, generator=generator))
    model.step += 1
    return {**figures, "teacher_forcing": ratio, "step_lr": lr}


@torch.no_grad()
def recalibrate(model: Lip2Wav, batches: Iterable[Mapping[str, Any]],
                device: torch.device) -> None:
    """Precise batch norm (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"): the
    encoder's running statistics recomputed as the plain average over
    ``precise_bn_batches`` training batches, weights fixed, everything else in eval mode.

    Why: inference normalises with the running statistics, an exponential average (the
    original's decay 0.99) of batches seen while the weights were still moving. In a
    CPU-minutes run they lag far behind the weights: on GRID s1 after 1039 steps (3
    CPU-min, tiny) free-running held-out mel L1 was 1.32 with them and 0.61 with
    statistics recomputed from 100 batches. Off (0) by default, as the original; the
    ``tiny`` preset turns it on.
    """
    n = int(model.cfg.precise_bn_batches)
    norms = [m for m in model.encoder.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if n <= 0 or not norms:
        return
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative (equal-weight) average over the batches
        m.train()
    try:
        for i, batch in enumerate(batches):
            if i >= n:
                break
            video = batch["video"].to(device)
            t = video.shape[1]
            lengths = (batch["valid_frames"].to(device).long().clamp(1, t)
                       if "valid_frames" in batch
                       else torch.full((video.shape[0],), t, device=device, dtype=torch.long))
            model.encoder(video, lengths)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
