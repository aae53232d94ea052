//! `gpunet export`: the ONNX graph computes gpunet's logits (run in tract, a
//! pure-Rust ONNX runtime), the PyTorch file's tensors are exactly the
//! `state_dict()` of the `nn.Sequential` its Python builds (checked in
//! Python without torch), and eval/predict read weights-only files.

mod common;

use common::{assert_close, random_vec, rng};
use gpunet::checkpoint::{self, Checkpoint};
use gpunet::cpu::network;
use gpunet::export::{onnx, torch, TorchNet};
use gpunet::graph::{Graph, Shape};
use gpunet::model_file::{self, Assumed, SavedModel};
use gpunet::ops::Mode;
use gpunet::spec::ModelSpec;
use std::path::Path;
use std::process::Command;
use tract_onnx::prelude::*;

const MNIST: Shape = Shape { c: 1, h: 28, w: 28 };

/// The three networks of the issue: an MLP, a CNN, and one with batch norm,
/// a residual block (with a projection shortcut), dropout and gap.
const MODELS: [(&str, &str, Shape); 3] = [
    ("mlp", "dense32,relu,dense16,tanh,dense10", MNIST),
    (
        "cnn",
        "conv4k3p1,relu,pool2,conv6k3s2,sigmoid,pool2s1,dense24,relu,dense10",
        MNIST,
    ),
    (
        "res",
        "conv4k3p1,bn,relu,res(conv8k3s2p1,bn,relu,dropout0.3,conv8k3p1),relu,\
         res(conv8k3p1,bn,relu),pool2,gap,flatten,dense12,bn,dropout0.5,dense10",
        Shape { c: 3, h: 12, w: 12 },
    ),
];

/// A model with random weights and random running statistics (so that
/// evaluation-mode batch norm is not the identity).
fn model(spec: &str, input: Shape, seed: u64) -> SavedModel {
    let graph = Graph::new(&ModelSpec::parse(spec).unwrap(), input, 10).unwrap();
    let params = graph.init_params(seed);
    let mut buffers = graph.init_buffers();
    let mut r = rng(seed + 1);
    for info in &graph.buffers {
        let values = &mut buffers[info.range()];
        if info.name.ends_with("running_mean") {
            values.copy_from_slice(&random_vec(&mut r, values.len(), 0.5));
        } else if info.name.ends_with("running_var") {
            let noise = random_vec(&mut r, values.len(), 0.5);
            for (v, u) in values.iter_mut().zip(noise) {
                *v = 1.0 + u;
            }
        } else {
            values.fill(17.0);
        }
    }
    SavedModel {
        graph,
        params,
        buffers,
        optimizer_state: Vec::new(),
        settings: None,
        progress: Default::default(),
        history: Vec::new(),
        snapshots: Vec::new(),
    }
}

/// gpunet's CPU reference in evaluation mode.
fn gpunet_logits(m: &SavedModel, x: &[f32], rows: usize) -> Vec<f32> {
    let mut buffers = m.buffers.clone();
    network::forward(&m.graph, &m.params, &mut buffers, x, rows, Mode::Eval, 0)
        .logits()
        .to_vec()
}

fn tract_logits(onnx_bytes: &[u8], input: Shape, x: &[f32], rows: usize) -> Vec<f32> {
    let shape = [rows, input.c, input.h, input.w];
    let runnable = tract_onnx::onnx()
        .model_for_read(&mut &onnx_bytes[..])
        .expect("tract reads the ONNX file")
        .with_input_fact(0, f32::fact(shape).into())
        .unwrap()
        .into_optimized()
        .expect("tract optimises the graph")
        .into_runnable()
        .unwrap();
    let tensor = Tensor::from_shape(&shape, x).unwrap();
    let outputs = runnable.run(tvec!(tensor.into())).expect("tract runs it");
    let logits = outputs[0].to_plain_array_view::<f32>().unwrap();
    assert_eq!(logits.shape(), [rows, 10]);
    logits.iter().copied().collect()
}

#[test]
fn onnx_gives_gpunets_logits() {
    for (what, spec, input) in MODELS {
        let m = model(spec, input, 7);
        let net = TorchNet::new(&m.graph).unwrap();
        let bytes = onnx_protobuf_bytes(&m, &net);
        // The batch dimension is free: two batch sizes from one file.
        for rows in [1, 5] {
            let x: Vec<f32> = random_vec(&mut rng(rows as u64), rows * input.len(), 0.5)
                .into_iter()
                .map(|v| v + 0.5)
                .collect();
            let want = gpunet_logits(&m, &x, rows);
            let got = tract_logits(&bytes, input, &x, rows);
            assert_close(&format!("{what}, {rows} rows"), &got, &want, 1e-5, 1e-5);
        }
    }
}

fn onnx_protobuf_bytes(m: &SavedModel, net: &TorchNet) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    onnx::save(m, net, &path).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn onnx_graph_is_opset_13_with_a_named_dynamic_input() {
    use onnx_protobuf::tensor_shape_proto::dimension::Value;
    use onnx_protobuf::type_proto;
    let (_, spec, input) = MODELS[2];
    let m = model(spec, input, 1);
    let proto = onnx::model_proto(&m, &TorchNet::new(&m.graph).unwrap());
    assert_eq!(proto.opset_import[0].version, 13);
    let graph = proto.graph.as_ref().unwrap();
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
    for op in [
        "Conv",
        "BatchNormalization",
        "Relu",
        "Dropout",
        "Add",
        "MaxPool",
        "GlobalAveragePool",
        "Flatten",
        "Gemm",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    assert_eq!(graph.input[0].name, "input");
    let Some(type_proto::Value::TensorType(t)) = &graph.input[0].type_.value else {
        panic!("the input is a tensor");
    };
    let dims: Vec<String> = t
        .shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(Value::DimParam(p)) => p.clone(),
            Some(Value::DimValue(v)) => v.to_string(),
            _ => "?".into(),
        })
        .collect();
    assert_eq!(dims, ["N", "3", "12", "12"]);
    assert_eq!(graph.output[0].name, "logits");
    // Initialisers carry the PyTorch names.
    let names: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"3.shortcut.weight"), "{names:?}");
    assert!(names.contains(&"1.running_var"), "{names:?}");
}

/// A stand-in for `torch.nn` that knows only which tensors each module
/// registers and their shapes (as PyTorch's `state_dict()` lists them), so
/// that the exported Python can be run without torch; then the safetensors
/// header, read with json and struct, must list the same names and shapes
/// and the dtypes PyTorch uses.
const CHECK_PY: &str = r#"
import json, struct, sys, types

class Module:
    def __init__(self):
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_tensors", {})
    def __setattr__(self, key, value):
        if isinstance(value, Module):
            self._modules[key] = value
        object.__setattr__(self, key, value)
    def shapes(self, prefix=""):
        out = {prefix + k: s for k, s in self._tensors.items()}
        for name, m in self._modules.items():
            out.update(m.shapes(prefix + name + "."))
        return out

class Sequential(Module):
    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            self._modules[str(i)] = m

def leaf(**tensors):
    class Leaf(Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self._tensors.update({k: f(*args, **kwargs) for k, f in tensors.items()})
    return Leaf

nn = types.ModuleType("torch.nn")
nn.Module, nn.Sequential = Module, Sequential
nn.Linear = leaf(weight=lambda i, o: [o, i], bias=lambda i, o: [o])
nn.Conv2d = leaf(weight=lambda i, o, kernel_size, stride, padding: [o, i, kernel_size, kernel_size],
                 bias=lambda i, o, **_: [o])
bn = dict(weight=lambda c, **_: [c], bias=lambda c, **_: [c], running_mean=lambda c, **_: [c],
          running_var=lambda c, **_: [c], num_batches_tracked=lambda c, **_: [])
nn.BatchNorm1d = leaf(**bn)
nn.BatchNorm2d = leaf(**bn)
for name in ["Flatten", "ReLU", "Tanh", "Sigmoid", "Identity", "Dropout", "MaxPool2d", "AdaptiveAvgPool2d"]:
    setattr(nn, name, leaf())
torch = types.ModuleType("torch")
torch.nn = nn
sys.modules["torch"], sys.modules["torch.nn"] = torch, nn

python_file, weights_file = sys.argv[1], sys.argv[2]
scope = {}
exec(compile(open(python_file).read(), python_file, "exec"), scope)
want = scope["build"]().shapes()
data = open(weights_file, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
header.pop("__metadata__", None)
got = {k: v["shape"] for k, v in header.items()}
if got != want:
    print("missing:", sorted(set(want) - set(got)), "extra:", sorted(set(got) - set(want)))
    print("shapes:", {k: (got[k], want[k]) for k in got.keys() & want.keys() if got[k] != want[k]})
    sys.exit(1)
for k, v in header.items():
    dtype = "I64" if k.endswith("num_batches_tracked") else "F32"
    if v["dtype"] != dtype:
        print(k, v["dtype"], "is not", dtype)
        sys.exit(1)
print(len(got), "tensors match")
"#;

#[test]
fn the_python_module_takes_the_weights_strictly() {
    let dir = tempfile::tempdir().unwrap();
    let check = dir.path().join("check.py");
    std::fs::write(&check, CHECK_PY).unwrap();
    for (what, spec, input) in MODELS {
        let m = model(spec, input, 3);
        let net = TorchNet::new(&m.graph).unwrap();
        let weights = dir.path().join(format!("{what}.safetensors"));
        let python = dir.path().join(format!("{what}.py"));
        torch::save(&m, &net, &weights, &python).unwrap();
        let out = Command::new("python3")
            .arg(&check)
            .arg(&python)
            .arg(&weights)
            .output()
            .expect("python3 runs (the check needs only its standard library)");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {text}");
        let count = m.graph.params.len() + m.graph.buffers.len();
        assert!(
            text.contains(&format!("{count} tensors match")),
            "{what}: {text}"
        );
    }
}

/// The torch file read back: the very weights and statistics, in gpunet's
/// layout, with its metadata or (weights only) with the spec given.
#[test]
fn weights_only_files_load_with_or_without_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let (_, spec, input) = MODELS[2];
    let m = model(spec, input, 5);
    let net = TorchNet::new(&m.graph).unwrap();
    let exported = dir.path().join("t.safetensors");
    torch::save(&m, &net, &exported, &dir.path().join("t.py")).unwrap();
    let same = |loaded: &SavedModel| {
        assert_eq!(loaded.params, m.params);
        assert_eq!(loaded.buffers, m.buffers);
        assert!(loaded.optimizer_state.is_empty());
    };
    same(&model_file::load(&exported).unwrap());

    // As a PyTorch user saves it: the same names, no metadata at all.
    let bare = dir.path().join("bare.safetensors");
    let mut ckpt = checkpoint::load(&exported).unwrap();
    ckpt.metadata.clear();
    write_foreign(&bare, &ckpt);
    let err = format!("{:#}", model_file::load(&bare).unwrap_err());
    assert!(
        err.contains("bare.safetensors does not say which network") && err.contains("--spec"),
        "{err}"
    );
    let assumed = Assumed {
        spec: Some(ModelSpec::parse(spec).unwrap()),
        input: Some(input),
    };
    let loaded = model_file::load_with(&bare, &assumed).unwrap();
    same(&loaded);
    assert_eq!(loaded.graph.classes(), 10);

    // gpunet's own names, weights only, work too.
    let ours = dir.path().join("ours.safetensors");
    let mut gpunet_names = ckpt.clone();
    for t in &mut gpunet_names.tensors {
        let info = net.tensors.iter().find(|n| n.torch == t.name).unwrap();
        t.name = info.gpunet.clone();
    }
    write_foreign(&ours, &gpunet_names);
    same(&model_file::load_with(&ours, &assumed).unwrap());

    // A spec that contradicts the file's own is refused.
    let wrong = Assumed {
        spec: Some(ModelSpec::parse("dense10").unwrap()),
        input: None,
    };
    let err = format!(
        "{:#}",
        model_file::load_with(&exported, &wrong).unwrap_err()
    );
    assert!(err.contains("names its own model"), "{err}");
}

/// Missing, extra and misshaped tensors: each named, with both shapes.
#[test]
fn a_weights_only_file_that_does_not_fit_is_refused_by_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let (_, spec, input) = MODELS[1];
    let m = model(spec, input, 2);
    let net = TorchNet::new(&m.graph).unwrap();
    let mut ckpt = torch::weights(&m, &net);
    ckpt.metadata.clear();
    let assumed = Assumed {
        spec: Some(ModelSpec::parse(spec).unwrap()),
        input: Some(input),
    };
    let error_of = |name: &str, ckpt: &Checkpoint| {
        let path = dir.path().join(name);
        write_foreign(&path, ckpt);
        format!("{:#}", model_file::load_with(&path, &assumed).unwrap_err())
    };

    let mut missing = ckpt.clone();
    missing.tensors.retain(|t| t.name != "9.bias");
    let err = error_of("missing.safetensors", &missing);
    assert!(
        err.contains("missing.safetensors")
            && err.contains("no tensor 9.bias (gpunet's layers.8.bias): the model")
            && err.contains("needs one of shape [10]"),
        "{err}"
    );

    let mut extra = ckpt.clone();
    let mut stray = extra.tensors[0].clone();
    stray.name = "fc.weight".into();
    extra.tensors.push(stray);
    let err = error_of("extra.safetensors", &extra);
    assert!(
        err.contains("extra.safetensors")
            && err.contains("has no place for: fc.weight [4, 1, 3, 3]"),
        "{err}"
    );

    let mut misshaped = ckpt.clone();
    let t = misshaped
        .tensors
        .iter_mut()
        .find(|t| t.name == "7.weight")
        .unwrap();
    let (rows, len) = (t.shape[0], t.data.len());
    t.shape = vec![rows / 2, len * 2 / rows];
    let err = error_of("misshaped.safetensors", &misshaped);
    assert!(
        err.contains(&format!(
            "tensor 7.weight (gpunet's layers.6.weight) has shape [{}, {}] but the model",
            rows / 2,
            len * 2 / rows
        )) && err.contains(&format!("needs [{rows}, {}]", len / rows)),
        "{err}"
    );
}

/// Writes a safetensors file as PyTorch's `save_file` would: no gpunet
/// format key (checkpoint::save always adds one).
fn write_foreign(path: &Path, ckpt: &Checkpoint) {
    let owned: Vec<(String, Vec<u8>, Vec<usize>, safetensors::Dtype)> = ckpt
        .tensors
        .iter()
        .map(|t| {
            let (bytes, dtype) = if t.dtype == checkpoint::Stored::I64 {
                let b = t
                    .data
                    .iter()
                    .flat_map(|v| (*v as i64).to_le_bytes())
                    .collect();
                (b, safetensors::Dtype::I64)
            } else {
                let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (b, safetensors::Dtype::F32)
            };
            (t.name.clone(), bytes, t.shape.clone(), dtype)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = owned
        .iter()
        .map(|(name, bytes, shape, dtype)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap();
            (name.clone(), view)
        })
        .collect();
    let metadata = (!ckpt.metadata.is_empty()).then(|| ckpt.metadata.clone().into_iter().collect());
    safetensors::serialize_to_file(views, metadata, path).unwrap();
}

/// The commands a user types: export both ways, then eval the weights-only
/// export with and without its metadata.
#[test]
fn export_and_eval_from_the_command_line() {
    let gpunet = env!("CARGO_BIN_EXE_gpunet");
    let dir = tempfile::tempdir().unwrap();
    let (_, spec, _) = MODELS[1];
    let m = model(spec, MNIST, 4);
    let saved = dir.path().join("m.safetensors");
    model_file::save(&saved, &m).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(gpunet).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let saved = saved.to_str().unwrap();
    let (ok, stdout, stderr) = run(&[
        "export",
        "--format",
        "torch",
        "--model",
        saved,
        "--out",
        &path("t.safetensors"),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("t.safetensors") && stdout.contains("t.py"),
        "{stdout}"
    );
    let python = std::fs::read_to_string(path("t.py")).unwrap();
    assert!(python.contains("nn.Flatten(),  # 6:"), "{python}");
    let (ok, _, stderr) = run(&[
        "export",
        "--format",
        "onnx",
        "--model",
        saved,
        "--out",
        &path("m.onnx"),
    ]);
    assert!(ok, "{stderr}");
    let bytes = std::fs::read(path("m.onnx")).unwrap();
    let x = vec![0.25; 2 * MNIST.len()];
    assert_close(
        "onnx",
        &tract_logits(&bytes, MNIST, &x, 2),
        &gpunet_logits(&m, &x, 2),
        1e-5,
        1e-5,
    );

    let mnist = common::mnist_dir();
    let data = mnist.to_str().unwrap();
    let eval = |model: &str, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--device",
            "cpu",
            "--data",
            data,
            "--test-limit",
            "50",
            "--json",
            "--model",
            model,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let (ok, original, stderr) = eval(saved, &[]);
    assert!(ok, "{stderr}");
    let (ok, exported, stderr) = eval(&path("t.safetensors"), &[]);
    assert!(ok, "{stderr}");
    let accuracy = |json: &str| -> f64 {
        serde_json::from_str::<serde_json::Value>(json).unwrap()["accuracy"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(accuracy(&exported), accuracy(&original));

    let mut bare = checkpoint::load(Path::new(&path("t.safetensors"))).unwrap();
    bare.metadata.clear();
    write_foreign(Path::new(&path("bare.safetensors")), &bare);
    let (ok, _, stderr) = eval(&path("bare.safetensors"), &[]);
    assert!(!ok && stderr.contains("give it with --spec"), "{stderr}");
    let (ok, stdout, stderr) = eval(&path("bare.safetensors"), &["--spec", spec]);
    assert!(ok, "{stderr}");
    assert_eq!(accuracy(&stdout), accuracy(&original));
}
