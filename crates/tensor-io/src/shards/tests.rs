use super::*;
use crate::write::OwnedTensor;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

fn meta() -> BTreeMap<String, String> {
    BTreeMap::from([("format".to_string(), "pt".to_string())])
}

/// Tensors of a toy model in write order, with their data.
fn toy() -> Vec<(PlannedTensor, Vec<u8>)> {
    let mut v = Vec::new();
    let mut add = |name: &str, dtype: Dtype, shape: Vec<usize>| {
        let t = PlannedTensor::new(name, dtype, shape);
        let n = t.byte_len().unwrap() as usize;
        let data = (0..n).map(|i| (i * 7 + name.len()) as u8).collect();
        v.push((t, data));
    };
    add("embed.weight", Dtype::BF16, vec![16, 8]);
    for l in 0..3 {
        add(&format!("layers.{l}.q.weight"), Dtype::BF16, vec![8, 8]);
        add(&format!("layers.{l}.q.bias"), Dtype::F32, vec![8]);
        add(&format!("layers.{l}.mlp.weight"), Dtype::BF16, vec![24, 8]);
        add(&format!("layers.{l}.norm.weight"), Dtype::BF16, vec![8]);
    }
    add("norm.weight", Dtype::BF16, vec![8]);
    v
}

fn plan(size: u64) -> ShardPlan {
    let list = toy().into_iter().map(|(t, _)| t).collect();
    ShardPlan::new(Path::new("out"), list, size, &meta()).unwrap()
}

fn write_all(dir: &Path, size: u64) -> Vec<std::path::PathBuf> {
    let mut w = ShardWriter::create(dir, plan(size)).unwrap();
    for (t, data) in toy() {
        w.write(&t.name, &data).unwrap();
    }
    w.finish().unwrap()
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn planning_follows_transformers_and_is_deterministic() {
    let p = plan(400);
    assert_eq!(p, plan(400));
    // embed (256) | l0 q (128) + bias (32) + mlp (384 > 400 - 160: new shard) ...
    let names: Vec<&str> = p.shards().iter().map(|s| s.file_name.as_str()).collect();
    let n = names.len();
    assert!(n > 3, "{names:?}");
    for (i, f) in names.iter().enumerate() {
        assert_eq!(*f, format!("model-{:05}-of-{n:05}.safetensors", i + 1));
    }
    for s in p.shards() {
        let data: u64 = s
            .tensors
            .iter()
            .map(|&i| p.tensors()[i].byte_len().unwrap())
            .sum();
        assert!(data <= 400 || s.tensors.len() == 1, "{s:?}");
    }
    // Tensors stay in order across shards.
    let order: Vec<usize> = p.shards().iter().flat_map(|s| s.tensors.clone()).collect();
    assert_eq!(order, (0..p.tensors().len()).collect::<Vec<_>>());
    // A tensor larger than the shard size gets a shard of its own.
    let big = plan(100);
    assert!(big.shards().iter().any(|s| s.tensors == [0]));
    assert!(big.shards().iter().any(|s| s.tensors == [3]));
    let order: Vec<usize> = big
        .shards()
        .iter()
        .flat_map(|s| s.tensors.clone())
        .collect();
    assert_eq!(order, (0..big.tensors().len()).collect::<Vec<_>>());
    let one = plan(super::DEFAULT_SHARD_SIZE);
    assert_eq!(one.shards().len(), 1);
    assert_eq!(one.shards()[0].file_name, "model.safetensors");
    let total: u64 = toy().iter().map(|(t, _)| t.byte_len().unwrap()).sum();
    assert_eq!(p.total_size(), total);
    // A name twice is refused, naming it.
    let mut dup: Vec<PlannedTensor> = toy().into_iter().map(|(t, _)| t).collect();
    dup.push(dup[1].clone());
    let e = ShardPlan::new(Path::new("out"), dup, 400, &meta()).unwrap_err();
    assert!(
        e.to_string()
            .contains("'layers.0.q.weight' is planned twice"),
        "{e}"
    );
}

#[test]
fn one_shard_is_what_safetensors_serialize_writes() {
    let dir = tempfile::tempdir().unwrap();
    write_all(dir.path(), super::DEFAULT_SHARD_SIZE);
    let toy = toy();
    let views: Vec<(String, TensorView<'_>)> = toy
        .iter()
        .map(|(t, d)| {
            (
                t.name.clone(),
                TensorView::new(t.dtype, t.shape.clone(), d).unwrap(),
            )
        })
        .collect();
    let want = safetensors::serialize(views, Some(HashMap::from([("format".into(), "pt".into())])))
        .unwrap();
    let got = files(dir.path());
    assert_eq!(got.keys().collect::<Vec<_>>(), ["model.safetensors"]);
    assert_eq!(got["model.safetensors"], want);
}

#[test]
fn several_shards_read_back_with_their_index() {
    let dir = tempfile::tempdir().unwrap();
    let paths = write_all(dir.path(), 400);
    let p = plan(400);
    assert_eq!(paths.len(), p.shards().len());
    let got = files(dir.path());
    assert_eq!(got.len(), p.shards().len() + 1, "{:?}", got.keys());
    let index: serde_json::Value = serde_json::from_slice(&got[INDEX_FILE]).unwrap();
    assert_eq!(index["metadata"]["total_size"], p.total_size());
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), toy().len());
    for (t, data) in toy() {
        let file = map[&t.name].as_str().unwrap();
        let st = SafeTensors::deserialize(&got[file]).unwrap();
        let v = st.tensor(&t.name).unwrap();
        assert_eq!((v.dtype(), v.shape()), (t.dtype, &t.shape[..]));
        assert_eq!(v.data(), &data[..], "{}", t.name);
        let (_, m) = SafeTensors::read_metadata(&got[file]).unwrap();
        assert_eq!(m.metadata().as_ref().unwrap()["format"], "pt");
    }
    // Same list, same bytes.
    let again = tempfile::tempdir().unwrap();
    write_all(again.path(), 400);
    assert_eq!(files(again.path()), got);
}

#[test]
fn out_of_order_and_wrong_size_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ShardWriter::create(dir.path(), plan(400)).unwrap();
    let e = w.write("norm.weight", &[0; 16]).unwrap_err().to_string();
    assert!(e.contains("expected 'embed.weight' next"), "{e}");
    let e = w.write("embed.weight", &[0; 3]).unwrap_err().to_string();
    assert!(e.contains("has 3 bytes"), "{e}");
    let e = w.finish().unwrap_err().to_string();
    assert!(e.contains("'embed.weight' was never written"), "{e}");
}

#[test]
fn disk_full_names_the_file_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ShardWriter::create(dir.path(), plan(400)).unwrap();
    w.space = Some(700);
    let mut err = None;
    for (t, data) in toy() {
        if let Err(e) = w.write(&t.name, &data) {
            err = Some(e.to_string());
            break;
        }
    }
    let e = err.expect("the write must fail");
    assert_eq!(e.lines().count(), 1, "{e}");
    let names: Vec<String> = files(dir.path()).into_keys().collect();
    // The first shard was complete before the space ran out; the failing one is only a
    // temporary file, whose final name the error gives.
    assert!(
        names.contains(&"model-00001-of-00008.safetensors".to_string()),
        "{names:?}"
    );
    let failing = names
        .iter()
        .find(|n| n.starts_with('.'))
        .expect("a temporary file")
        .clone();
    let fin = failing.trim_start_matches('.').trim_end_matches(".partial");
    assert!(e.contains(fin) && e.contains("No space left"), "{e}");
    assert!(!names.contains(&fin.to_string()), "{names:?}");
    w.discard();
    assert!(!files(dir.path()).contains_key(&failing));

    // A directory where the shard's temporary file must go: cannot create it.
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(partial_name("model.safetensors"))).unwrap();
    let mut w = ShardWriter::create(dir.path(), plan(u64::MAX)).unwrap();
    let (t, data) = &toy()[0];
    let e = w.write(&t.name, data).unwrap_err().to_string();
    assert!(
        e.contains("model.safetensors: ") && e.lines().count() == 1,
        "{e}"
    );
    assert!(!dir.path().join("model.safetensors").exists());
    // No directory at all.
    let e = ShardWriter::create(&dir.path().join("nope"), plan(400))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn a_resumed_writer_writes_the_same_bytes() {
    let whole = tempfile::tempdir().unwrap();
    write_all(whole.path(), 400);
    let want = files(whole.path());
    let toy = toy();
    // Stopped after `k` synced tensors, with `extra` more written but not synced (and
    // possibly a shard completed past the checkpoint): resumed from `k`.
    for (k, extra) in [
        (0, 0),
        (1, 0),
        (3, 2),
        (5, 6),
        (toy.len() - 1, 1),
        (toy.len(), 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::create(dir.path(), plan(400)).unwrap();
        for (t, data) in &toy[..k] {
            w.write(&t.name, data).unwrap();
        }
        w.sync().unwrap();
        for (t, data) in &toy[k..(k + extra).min(toy.len())] {
            // Garbage where the later tensors go: the resumed writer overwrites it.
            let junk = vec![0xAB; data.len()];
            w.write(&t.name, &junk).unwrap();
        }
        drop(w);
        let mut w = ShardWriter::resume(dir.path(), plan(400), k).unwrap();
        assert_eq!(w.written(), k);
        if k > 0 {
            let back = w.read_back(&toy[k - 1].0.name).unwrap();
            assert_eq!(back.bytes, toy[k - 1].1);
        }
        for (t, data) in &toy[k..] {
            w.write(&t.name, data).unwrap();
        }
        w.finish().unwrap();
        assert_eq!(files(dir.path()), want, "stopped at {k} (+{extra})");
    }
    let _ = OwnedTensor::u8(vec![1], vec![0]);
}

#[test]
fn a_tensor_written_in_parts_gives_the_same_files() {
    let whole = tempfile::tempdir().unwrap();
    write_all(whole.path(), 400);
    let parts = tempfile::tempdir().unwrap();
    let mut w = ShardWriter::create(parts.path(), plan(400)).unwrap();
    for (t, data) in toy() {
        w.begin(&t.name, data.len() as u64).unwrap();
        for chunk in data.chunks(5) {
            w.append(chunk).unwrap();
        }
        w.end().unwrap();
    }
    w.finish().unwrap();
    assert_eq!(files(whole.path()), files(parts.path()));
}

#[test]
fn parts_that_overflow_or_fall_short_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (t, data) = toy().remove(0);
    let mut w = ShardWriter::create(dir.path(), plan(400)).unwrap();
    let e = w.append(&data).unwrap_err().to_string();
    assert!(e.contains("no tensor is begun"), "{e}");
    w.begin(&t.name, data.len() as u64).unwrap();
    w.append(&data[..10]).unwrap();
    let e = w.end().unwrap_err().to_string();
    assert!(
        e.contains("embed.weight") && e.contains("10 of its 256"),
        "{e}"
    );
    let e = w.append(&data).unwrap_err().to_string();
    assert!(e.contains("cannot take 256 more bytes"), "{e}");
    let e = w.begin("layers.0.q.weight", 128).unwrap_err().to_string();
    assert!(e.contains("previous tensor is not finished"), "{e}");
    w.append(&data[10..]).unwrap();
    w.end().unwrap();
    assert_eq!(w.written(), 1);
}

#[test]
fn a_single_file_of_another_name_is_what_safetensors_serialize_writes() {
    let dir = tempfile::tempdir().unwrap();
    let list: Vec<PlannedTensor> = toy().into_iter().map(|(t, _)| t).collect();
    let mut p = ShardPlan::new(Path::new("out"), list.clone(), u64::MAX, &meta()).unwrap();
    assert!(p.name_single_file("masks.safetensors"));
    let mut w = ShardWriter::create(dir.path(), p).unwrap();
    for (t, data) in toy() {
        w.write(&t.name, &data).unwrap();
    }
    w.finish().unwrap();
    let whole = tempfile::tempdir().unwrap();
    write_all(whole.path(), u64::MAX);
    let got = files(dir.path());
    assert_eq!(got.keys().collect::<Vec<_>>(), ["masks.safetensors"]);
    assert_eq!(
        got["masks.safetensors"],
        files(whole.path())["model.safetensors"]
    );
    // Several shards keep their names.
    assert!(!plan(400).name_single_file("masks.safetensors"));
}
