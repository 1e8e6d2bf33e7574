//! A plain-Rust f64 forward of the tiny model, the reference its loaders are checked
//! against.

use super::spec::{
    vocab_tokens, Weights, EPS, HEADS, HEAD_DIM, HIDDEN, INTER, KV_HEADS, LAYERS, THETA,
};

/// A plain-Rust f64 forward of the tiny model (HF semantics): logits `[seq, vocab]`.
pub fn reference_logits(w: &Weights, ids: &[u32], tied: bool) -> Vec<Vec<f64>> {
    let g = |n: &str| -> &Vec<f32> { &w.get(n).unwrap_or_else(|| panic!("{n}")).1 };
    let s = ids.len();
    let emb = g("model.embed_tokens.weight");
    let mut h: Vec<Vec<f64>> = ids
        .iter()
        .map(|&i| {
            emb[i as usize * HIDDEN..(i as usize + 1) * HIDDEN]
                .iter()
                .map(|&x| x as f64)
                .collect()
        })
        .collect();
    let norm = |x: &[f64], wt: &[f32]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let r = 1.0 / (ms + EPS).sqrt();
        x.iter().zip(wt).map(|(v, &g)| v * r * g as f64).collect()
    };
    let lin = |x: &[f64], wt: &[f32], b: Option<&Vec<f32>>, out: usize| -> Vec<f64> {
        let inp = x.len();
        (0..out)
            .map(|o| {
                let d: f64 = (0..inp).map(|i| wt[o * inp + i] as f64 * x[i]).sum();
                d + b.map(|b| b[o] as f64).unwrap_or(0.0)
            })
            .collect()
    };
    let rope = |v: &mut [f64], pos: usize| {
        for hd in v.chunks_mut(HEAD_DIM) {
            let half = HEAD_DIM / 2;
            for i in 0..half {
                let f = 1.0 / THETA.powf((2 * i) as f64 / HEAD_DIM as f64);
                let (c, sn) = ((pos as f64 * f).cos(), (pos as f64 * f).sin());
                let (a, b) = (hd[i], hd[i + half]);
                hd[i] = a * c - b * sn;
                hd[i + half] = b * c + a * sn;
            }
        }
    };
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        let b = |m: &str| w.get(&format!("{p}.{m}.bias")).map(|(_, v)| v);
        let xn: Vec<Vec<f64>> = h
            .iter()
            .map(|x| norm(x, g(&format!("{p}.input_layernorm.weight"))))
            .collect();
        // One attention input projection (`q_proj`, `k_proj`, `v_proj`) of every position.
        let proj = |m: &str, out: usize| -> Vec<Vec<f64>> {
            let wt = g(&format!("{p}.self_attn.{m}.weight"));
            let bias = b(&format!("self_attn.{m}"));
            xn.iter().map(|x| lin(x, wt, bias, out)).collect()
        };
        let mut q = proj("q_proj", HEADS * HEAD_DIM);
        let mut k = proj("k_proj", KV_HEADS * HEAD_DIM);
        let v = proj("v_proj", KV_HEADS * HEAD_DIM);
        for t in 0..s {
            rope(&mut q[t], t);
            rope(&mut k[t], t);
        }
        let rep = HEADS / KV_HEADS;
        let mut attn = vec![vec![0f64; HEADS * HEAD_DIM]; s];
        for t in 0..s {
            for hh in 0..HEADS {
                let kv = hh / rep;
                let qv = &q[t][hh * HEAD_DIM..(hh + 1) * HEAD_DIM];
                let sc: Vec<f64> = (0..=t)
                    .map(|u| {
                        qv.iter()
                            .zip(&k[u][kv * HEAD_DIM..(kv + 1) * HEAD_DIM])
                            .map(|(a, b)| a * b)
                            .sum::<f64>()
                            / (HEAD_DIM as f64).sqrt()
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (u, eu) in e.iter().enumerate() {
                    for d in 0..HEAD_DIM {
                        attn[t][hh * HEAD_DIM + d] += eu / z * v[u][kv * HEAD_DIM + d];
                    }
                }
            }
        }
        for t in 0..s {
            let o = lin(
                &attn[t],
                g(&format!("{p}.self_attn.o_proj.weight")),
                None,
                HIDDEN,
            );
            for i in 0..HIDDEN {
                h[t][i] += o[i];
            }
            let xn2 = norm(&h[t], g(&format!("{p}.post_attention_layernorm.weight")));
            let gt = lin(&xn2, g(&format!("{p}.mlp.gate_proj.weight")), None, INTER);
            let up = lin(&xn2, g(&format!("{p}.mlp.up_proj.weight")), None, INTER);
            let act: Vec<f64> = gt
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let d = lin(&act, g(&format!("{p}.mlp.down_proj.weight")), None, HIDDEN);
            for i in 0..HIDDEN {
                h[t][i] += d[i];
            }
        }
    }
    let head = if tied {
        g("model.embed_tokens.weight")
    } else {
        g("lm_head.weight")
    };
    let vsz = vocab_tokens().len();
    h.iter()
        .map(|x| lin(&norm(x, g("model.norm.weight")), head, None, vsz))
        .collect()
}
