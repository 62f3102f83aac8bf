# frame interpolation w/ bidirectional flow (RIFE-ish, tiny). research code, sorry.
import argparse, copy, math, os, time
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def get_args(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('--data_root', type=Path, default=Path('data/vimeo_triplet'))
    p.add_argument('--lr', type=float, default=2e-4)
    p.add_argument('--bs', type=int, default=4)
    p.add_argument('--crop', type=int, nargs=2, default=[32, 32])
    p.add_argument('--n_inter', type=int, default=3)  # frames between the two keyframes
    p.add_argument('--occ_thresh', type=float, default=0.5)
    p.add_argument('--ema', type=float, default=0.999)
    return p.parse_args(argv)


def conv(i, o, s=1):
    return nn.Sequential(nn.Conv2d(i, o, 3, s, 1), nn.PReLU(o))


class FlowBlock(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.enc = nn.Sequential(conv(7, c, 2), conv(c, c), conv(c, c))
        self.dec = nn.ConvTranspose2d(c, 5, 4, 2, 1)  # 2 flows (4ch) + occlusion logit

    def forward(self, x0, x1, t):
        tt = t.view(-1, 1, 1, 1).expand(-1, 1, *x0.shape[2:])
        out = self.dec(self.enc(torch.cat([x0, x1, tt], 1)))
        return out[:, :2], out[:, 2:4], torch.sigmoid(out[:, 4:5])


def warp(x, flo):
    B, _, H, W = x.shape
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing='ij')
    grid = torch.stack([xx, yy], 0).float().unsqueeze(0) + flo
    gx = 2 * grid[:, 0] / max(W - 1, 1) - 1
    gy = 2 * grid[:, 1] / max(H - 1, 1) - 1
    return F.grid_sample(x, torch.stack([gx, gy], -1), align_corners=True)


class TinyIFNet(nn.Module):
    def __init__(self, c=16):
        super().__init__()
        self.block = FlowBlock(c)

    def forward(self, x0, x1, t):
        f_t0, f_t1, m = self.block(x0, x1, t)
        return m * warp(x0, f_t0) + (1 - m) * warp(x1, f_t1), f_t0, f_t1, m


def charbonnier(x, y, eps=1e-3):
    return torch.sqrt((x - y) ** 2 + eps ** 2).mean()


def epe(flow_pred, flow_gt, valid=None):
    e = torch.norm(flow_pred - flow_gt, dim=1)
    if valid is not None:
        e = e[valid > 0.5]
    return e.mean()


def psnr(a, b):
    mse = F.mse_loss(a, b).item()
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def fake_batch(bs, crop, g=None):
    x0 = torch.rand(bs, 3, *crop, generator=g)
    shift = torch.randint(-2, 3, (2,), generator=g)
    x1 = torch.roll(x0, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
    gt = 0.5 * (x0 + x1)
    flow = shift.flip(0).float().view(1, 2, 1, 1).expand(bs, 2, *crop) * 0.5
    return x0, x1, gt, flow


def flow_stats(flows):
    """flows: list of (B,2,H,W) tensors -> magnitude mean, p99, max |u|,|v| (numpy)"""
    mag = np.concatenate([torch.norm(f, dim=1).flatten().numpy() for f in flows])
    comp = np.concatenate([f.abs().flatten().numpy() for f in flows])
    return mag.mean(), np.percentile(mag, 99), comp.max()


def fwd_bwd_occlusion(f01, f10, thresh=0.5):
    # occluded where forward-backward flow is inconsistent
    err = torch.norm(f01 + warp(f10, f01), dim=1)
    bound = 0.01 * (torch.norm(f01, dim=1) ** 2 + torch.norm(f10, dim=1) ** 2) + thresh
    return (err > bound)


def timesteps_for(n_inter):
    return [Fraction(i, n_inter + 1) for i in range(1, n_inter + 1)]


def train(args, iters=6, seed=0):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = TinyIFNet()
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=iters)
    ts = timesteps_for(args.n_inter)
    best_epe, epe_hist, step = float('inf'), [], 0
    for step in range(1, iters + 1):
        x0, x1, gt, flow = fake_batch(args.bs, args.crop, g)
        t = torch.full((args.bs,), float(ts[step % len(ts)]))
        pred, f_t0, f_t1, m = net(x0, x1, t)
        loss = charbonnier(pred, gt) + 0.01 * epe(f_t0, -flow)
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters()):
                pe.mul_(args.ema).add_(pn, alpha=1 - args.ema)
        e = epe(f_t0, -flow).item()
        epe_hist.append(e)
        if e < best_epe:
            best_epe = e
    return dict(net=net, ema=ema, opt=opt, sched=sched, g=g, step=step, best_epe=best_epe, epe_hist=epe_hist)


@torch.no_grad()
def evaluate(net, args, n=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    ps, es, flows, occ = [], [], [], []
    for _ in range(n):
        x0, x1, gt, flow = fake_batch(2, args.crop, g)
        pred, f_t0, f_t1, m = net(x0, x1, torch.full((2,), 0.5))
        ps.append(psnr(pred.clamp(0, 1), gt))
        es.append(epe(f_t0, -flow).item())
        flows.append(f_t0)
        occ.append(fwd_bwd_occlusion(f_t0, f_t1, args.occ_thresh))
    return {'psnr': sum(ps) / len(ps), 'epe': float(np.mean(es)), 'epe_all': es}, flows, torch.stack(occ)


def save_vfi_train(tmpdir):
    args = get_args([])
    r = train(args)
    path = os.path.join(tmpdir, 'ifnet_train.pth')
    torch.save({
        'net': r['net'].state_dict(),
        'opt': r['opt'].state_dict(),
        'step': r['step'],
        'best_epe': r['best_epe'],
        'epe_hist': r['epe_hist'],
        'args': args,  # truth: weights_only
        'sched': r['sched'],  # truth: weights_only
        'lr_now': r['sched'].get_last_lr()[0],
    }, path)
    return path


def save_flow_stats(tmpdir):
    args = get_args(['--crop', '24', '24'])
    r = train(args, iters=3)
    _, flows, _ = evaluate(r['net'], args)
    mag_mean, mag_p99, max_disp = flow_stats(flows)
    allf = torch.cat(flows)
    flow_mean = allf.mean(dim=(0, 2, 3))
    flow_std = allf.std(dim=(0, 2, 3))
    ck = {'net': r['net'].state_dict()}
    ck['flow_mag_mean'] = float(mag_mean)
    ck['flow_mag_p99'] = mag_p99  # truth: weights_only
    ck['max_disp'] = max_disp.item()
    ck['flow_norm'] = {'mean': flow_mean, 'std': flow_std.numpy()}  # truth: weights_only
    ck['flow_norm_list'] = {'mean_l': flow_mean.tolist(), 'std_l': flow_std.tolist()}
    ck['clip'] = math.ceil(float(mag_p99))
    ck['crop'] = tuple(args.crop)
    torch.save(ck, os.path.join(tmpdir, 'flow_stats.pth'))
    return os.path.join(tmpdir, 'flow_stats.pth')


def save_interp_eval(tmpdir):
    args = get_args(['--n_inter', '3'])
    r = train(args, iters=2)
    t0 = time.perf_counter()
    metrics, flows, occ = evaluate(r['ema'], args)
    dt = timedelta(seconds=time.perf_counter() - t0)
    occ_np = occ.numpy()
    ts = timesteps_for(args.n_inter)
    out = {'ema': r['ema'].state_dict(), 'metrics': metrics}
    out['timesteps'] = ts  # truth: weights_only
    out['t_float'] = [float(t) for t in ts]
    out['t_ratio'] = [(t.numerator, t.denominator) for t in ts]
    out['occ_ratio'] = occ_np.mean()  # truth: weights_only
    out['occ_ratio_t'] = occ.float().mean()
    out['occ_mask'] = occ[:, 0].to(torch.uint8)
    out['occ_pixels'] = int(occ_np.sum())
    out['eval_time'] = dt  # truth: weights_only
    out['eval_seconds'] = dt.total_seconds()
    out['epe_worst'] = max(metrics['epe_all'])
    torch.save(out, os.path.join(tmpdir, 'interp_eval.pth'))
    return os.path.join(tmpdir, 'interp_eval.pth')


def save_ema_resume(tmpdir):
    args = get_args([])
    r = train(args, iters=3)
    rng = np.random.default_rng(3)
    order = rng.permutation(16)
    state = {'step': r['step'], 'net': r['net'].state_dict(), 'opt': r['opt'].state_dict(),
             'sched': r['sched'].state_dict()}
    state['ema'] = r['ema']  # truth: weights_only
    state['ema_decay'] = args.ema
    state['data_root'] = str(args.data_root)
    state['sampler'] = {'order': order.tolist(), 'bitgen': rng.bit_generator.state}
    state['gen'] = r['g']  # truth: weights_only
    state['gen_state'] = r['g'].get_state()
    state['next_clip'] = int(order[0])
    path = os.path.join(tmpdir, 'resume.pth')
    torch.save(state, path)
    return path


def save_vfi_export(tmpdir):
    args = get_args(['--n_inter', '1'])
    r = train(args, iters=2)
    metrics, _, occ = evaluate(r['net'], args, n=2)
    export = dict(
        weights=r['ema'].state_dict(),
        psnr=round(metrics['psnr'], 3),
        epe=metrics['epe'],
        epe_per_clip=[round(e, 4) for e in metrics['epe_all']],
        timesteps=[str(t) for t in timesteps_for(args.n_inter)],
        occ_thresh=args.occ_thresh,
        occ_frac=occ.float().mean().item(),
        crop=list(args.crop),
        data_root=args.data_root.name,
        dtype=torch.float32,
        in_shape=torch.Size([1, 3, *args.crop]),
    )
    path = os.path.join(tmpdir, 'ifnet_export.pth')
    torch.save(export, path)
    return path
