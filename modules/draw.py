"""DRAW (Gregor et al. 2015): a variational auto-encoder that draws an image over T steps, reading the input and
writing the canvas through Gaussian windows (modules.gaussian_window) or whole (``full``).

    x^_t = x - sigmoid(c_{t-1})                          the error image
    r_t = read(x, x^_t, h^dec_{t-1})                     [2N^2] glimpses, or [2HW] whole images
    h^enc_t = LSTM^enc(h^enc_{t-1}, [r_t, h^dec_{t-1}])
    z_t ~ Q(z_t | h^enc_t) = N(mu_t, sigma_t)            the prior is N(0, I)
    h^dec_t = LSTM^dec(h^dec_{t-1}, z_t)
    c_t = c_{t-1} + write(h^dec_t)                       the output is Bernoulli(sigmoid(c_T))

With ``steps=1`` and full read and write this is a plain VAE whose encoder and decoder are single LSTM cells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modules.gaussian_window import GaussianWindow

KINDS = ("attention", "full")


@dataclass
class DrawPass:
    """What one pass over a batch produced; T steps, B images, Z latent units."""

    canvases: torch.Tensor            # [T, B, H, W] canvas logits c_t after every step
    means: torch.Tensor               # [T, B, Z] posterior means (zeros when drawn from the prior)
    log_sigmas: torch.Tensor          # [T, B, Z] posterior log standard deviations
    latents: torch.Tensor             # [T, B, Z] the z_t drawn
    read_boxes: torch.Tensor | None   # [T, B, 4] windows read (attention reads only)
    write_boxes: torch.Tensor | None  # [T, B, 4] windows written (attention writes only)


class DRAWNetwork(nn.Module):
    """See the module docstring. Images are [B, H, W] in [0, 1] (binarised for the Bernoulli likelihood)."""

    def __init__(self, *, height: int, width: int, steps: int, read: str, write: str, read_size: int,
                 write_size: int, encoder_size: int, decoder_size: int, latent_size: int) -> None:
        super().__init__()
        for option, kind in (("read", read), ("write", write)):
            if kind not in KINDS:
                raise ValueError(f"model.{option}={kind!r} is not known; choose one of {list(KINDS)}")
        if steps < 1:
            raise ValueError(f"model.steps={steps}: DRAW needs at least one step")
        self.height, self.width, self.steps, self.latent_size = height, width, steps, latent_size
        pixels = height * width
        self.reader = GaussianWindow(decoder_size, read_size, height, width) if read == "attention" else None
        read_features = 2 * (read_size**2 if self.reader else pixels)
        self.encoder = nn.LSTMCell(read_features + decoder_size, encoder_size)
        self.posterior = nn.Linear(encoder_size, 2 * latent_size)
        self.decoder = nn.LSTMCell(latent_size, decoder_size)
        self.writer = (GaussianWindow(decoder_size, write_size, height, width, unit_write_gain=True)
                       if write == "attention" else None)
        self.patch = nn.Linear(decoder_size, write_size**2 if self.writer else pixels)
        self.write_size = write_size

    def _read(self, images: torch.Tensor, errors: torch.Tensor, state: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """images, errors [B, H, W], decoder state [B, D] -> what the encoder reads [B, R] and the box [B, 4]."""
        if self.reader is None:
            return torch.cat([images.flatten(1), errors.flatten(1)], dim=-1), None
        glimpses, window = self.reader.read(torch.stack([images, errors], dim=1), state)      # [B, 2, N, N]
        return glimpses.flatten(1), window.box()

    def _write(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """decoder state [B, D] -> canvas update [B, H, W] and the box written [B, 4]."""
        patch = self.patch(state)
        if self.writer is None:
            return patch.view(-1, self.height, self.width), None
        update, window = self.writer.write(patch.view(-1, 1, self.write_size, self.write_size), state)
        return update[:, 0], window.box()

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> DrawPass:
        """Encode and draw ``images`` [B, H, W]; the z_t come from ``generator`` (None: torch's global one)."""
        batch = images.shape[0]
        images = images.float()
        canvas = images.new_zeros(batch, self.height, self.width)
        encoder_state = self._zero_states(self.encoder, batch, images)
        decoder_state = self._zero_states(self.decoder, batch, images)
        steps: dict[str, list[torch.Tensor]] = {name: [] for name in
                                                ("canvases", "means", "log_sigmas", "latents", "read", "write")}
        for _ in range(self.steps):
            errors = images - torch.sigmoid(canvas)
            read, read_box = self._read(images, errors, decoder_state[0])
            encoder_state = self.encoder(torch.cat([read, decoder_state[0]], dim=-1), encoder_state)
            mean, log_sigma = self.posterior(encoder_state[0]).chunk(2, dim=-1)               # [B, Z] each
            noise = standard_normal(mean.shape, generator, mean.device)
            latent = mean + log_sigma.exp() * noise
            decoder_state = self.decoder(latent, decoder_state)
            update, write_box = self._write(decoder_state[0])
            canvas = canvas + update
            for name, value in (("canvases", canvas), ("means", mean), ("log_sigmas", log_sigma),
                                ("latents", latent), ("read", read_box), ("write", write_box)):
                steps[name].append(value)
        return self._pass(steps)

    @torch.no_grad()
    def generate(self, count: int, generator: torch.Generator | None = None) -> DrawPass:
        """Draw ``count`` images from the prior: z_t ~ N(0, I) fed to the decoder alone."""
        device = self.patch.weight.device
        canvas = torch.zeros(count, self.height, self.width, device=device)
        decoder_state = self._zero_states(self.decoder, count, canvas)
        steps: dict[str, list[torch.Tensor]] = {name: [] for name in ("canvases", "latents", "write")}
        for _ in range(self.steps):
            latent = standard_normal((count, self.latent_size), generator, device)
            decoder_state = self.decoder(latent, decoder_state)
            update, write_box = self._write(decoder_state[0])
            canvas = canvas + update
            for name, value in (("canvases", canvas), ("latents", latent), ("write", write_box)):
                steps[name].append(value)
        zeros = [torch.zeros_like(latent) for _ in range(self.steps)]
        return self._pass({**steps, "means": zeros, "log_sigmas": zeros, "read": [None]})

    @staticmethod
    def _zero_states(cell: nn.LSTMCell, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = like.new_zeros(batch, cell.hidden_size)
        return zeros, zeros

    @staticmethod
    def _pass(steps: dict[str, list[torch.Tensor | None]]) -> DrawPass:
        def stacked(values: list[torch.Tensor | None]) -> torch.Tensor | None:
            return None if values[0] is None else torch.stack(values)
        return DrawPass(canvases=stacked(steps["canvases"]), means=stacked(steps["means"]),
                        log_sigmas=stacked(steps["log_sigmas"]), latents=stacked(steps["latents"]),
                        read_boxes=stacked(steps["read"]), write_boxes=stacked(steps["write"]))


def standard_normal(shape: tuple[int, ...] | torch.Size, generator: torch.Generator | None,
                    device: torch.device) -> torch.Tensor:
    """N(0, I) draws on ``device`` from ``generator`` (on whatever device the generator lives: a CPU generator may
    drive a GPU model, e.g. predict.py's seed)."""
    if generator is None:
        return torch.randn(shape, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def reconstruction_nats(drawn: DrawPass, images: torch.Tensor) -> torch.Tensor:
    """-log D(x | c_T) under the Bernoulli output, per image [B], in nats."""
    logits = drawn.canvases[-1].float()
    return F.binary_cross_entropy_with_logits(logits, images.float(), reduction="none").flatten(1).sum(-1)


def kl_nats(drawn: DrawPass) -> torch.Tensor:
    """sum_t KL(Q(z_t | h^enc_t) || N(0, I)) per image [B], in nats (the paper's L^z)."""
    means, log_sigmas = drawn.means.float(), drawn.log_sigmas.float()
    per_unit = 0.5 * (means**2 + torch.exp(2 * log_sigmas) - 2 * log_sigmas - 1)          # [T, B, Z]
    return per_unit.sum(dim=(0, 2))


def log_importance_weight(drawn: DrawPass, images: torch.Tensor) -> torch.Tensor:
    """log p(x | z) + log p(z) - log q(z | x) of the z the pass drew, per image [B] (constants cancel)."""
    latents, means, log_sigmas = drawn.latents.float(), drawn.means.float(), drawn.log_sigmas.float()
    log_prior = -0.5 * latents**2
    log_posterior = -0.5 * ((latents - means) / log_sigmas.exp()) ** 2 - log_sigmas
    return -reconstruction_nats(drawn, images) + (log_prior - log_posterior).sum(dim=(0, 2))


def importance_weighted_nats(network: DRAWNetwork, images: torch.Tensor, samples: int,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """-log (1/K sum_k w_k), the K-sample importance-weighted bound on -log p(x) (Burda et al. 2016), per image
    [B]; the K passes run as one batch of K x B."""
    batch = images.shape[0]
    repeated = images.repeat(samples, 1, 1)                                                 # [K*B, H, W]
    weights = log_importance_weight(network(repeated, generator), repeated).view(samples, batch)
    return -(torch.logsumexp(weights, dim=0) - math.log(samples))
