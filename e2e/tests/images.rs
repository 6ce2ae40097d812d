//! The images `scripts/images` builds, read the way a registry and a kubelet read them: the
//! OCI layout's index, manifest, config and layer, every blob checked against its digest.
//! Each image must be what the Dockerfile's final stage declares (user, entrypoint, cmd,
//! environment, labels, files), run as a numeric non-root user, hold no shell, carry a
//! static binary that prints this release's version, and stay small.
//!
//! Run: `scripts/images`, then `cargo test -p veche-e2e --features cluster --test images`
//! (scripts/test does both; the images' directory is `VECHE_IMAGES_DIR`, or
//! `$CARGO_TARGET_DIR/images`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const IMAGES: [&str; 2] = ["veche", "veche-operator"];
/// "Tens of MB, not hundreds": what a node pulls (config and compressed layers).
const MAX_COMPRESSED_BYTES: u64 = 60_000_000;
/// Programs whose presence would mean a shell or a shell-like toolbox in the image.
const SHELLS: [&str; 6] = ["sh", "bash", "ash", "dash", "busybox", "toybox"];

fn images_dir() -> PathBuf {
    let dir = std::env::var_os("VECHE_IMAGES_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("images")
    });
    assert!(
        dir.join("images.json").is_file(),
        "no images in {}: build them first with scripts/images (or set VECHE_IMAGES_DIR)",
        dir.display()
    );
    dir
}

/// One image of an OCI layout: its manifest, config and layers, each verified.
struct Image {
    reference: String,
    config: Value,
    layers: Vec<Vec<u8>>,
    compressed_bytes: u64,
}

impl Image {
    fn open(name: &str) -> Image {
        let dir = images_dir();
        let listed: Vec<Value> = json(&std::fs::read(dir.join("images.json")).unwrap());
        let entry = listed.iter().find(|i| i["name"] == name).unwrap_or_else(|| panic!("{name} not in images.json"));
        let layout = PathBuf::from(entry["layout"].as_str().unwrap());
        let index: Value = json(&std::fs::read(layout.join("index.json")).unwrap());
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "one image per layout");
        let descriptor = &index["manifests"][0];
        let reference = descriptor["annotations"]["io.containerd.image.name"].as_str().unwrap().to_string();
        let manifest: Value = json(&blob(&layout, descriptor));
        assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        let config: Value = json(&blob(&layout, &manifest["config"]));
        let mut compressed_bytes = manifest["config"]["size"].as_u64().unwrap();
        let layers = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| {
                compressed_bytes += layer["size"].as_u64().unwrap();
                let media = layer["mediaType"].as_str().unwrap();
                let raw = blob(&layout, layer);
                match media {
                    "application/vnd.oci.image.layer.v1.tar+gzip" => {
                        let mut tar = Vec::new();
                        flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut tar).unwrap();
                        tar
                    }
                    "application/vnd.oci.image.layer.v1.tar" => raw,
                    other => panic!("unexpected layer media type {other}"),
                }
            })
            .collect::<Vec<_>>();
        // The config's diff_ids are the digests of the uncompressed layers, in order.
        let diff_ids: Vec<String> =
            config["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().into()).collect();
        let computed: Vec<String> = layers.iter().map(|l| format!("sha256:{}", hex(&Sha256::digest(l)))).collect();
        assert_eq!(diff_ids, computed, "{name}: rootfs.diff_ids");
        Image { reference, config, layers, compressed_bytes }
    }

    /// Every entry of every layer: path (without a leading `./` or `/`) -> (uid, gid, mode, kind).
    fn files(&self) -> BTreeMap<String, (u64, u64, u32, tar::EntryType)> {
        let mut files = BTreeMap::new();
        for layer in &self.layers {
            let mut archive = tar::Archive::new(layer.as_slice());
            for entry in archive.entries().unwrap() {
                let entry = entry.unwrap();
                let header = entry.header();
                let path =
                    entry.path().unwrap().to_string_lossy().trim_start_matches("./").trim_matches('/').to_string();
                if path.is_empty() {
                    continue;
                }
                let meta = (header.uid().unwrap(), header.gid().unwrap(), header.mode().unwrap(), header.entry_type());
                files.insert(path, meta);
            }
        }
        files
    }

    fn file(&self, wanted: &str) -> Vec<u8> {
        for layer in self.layers.iter().rev() {
            let mut archive = tar::Archive::new(layer.as_slice());
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                if entry.path().unwrap().to_string_lossy().trim_start_matches("./") == wanted {
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes).unwrap();
                    return bytes;
                }
            }
        }
        panic!("{} has no {wanted}", self.reference)
    }

    fn label(&self, key: &str) -> &str {
        self.config["config"]["Labels"][key].as_str().unwrap_or_else(|| panic!("{}: no label {key}", self.reference))
    }
}

/// A blob of the layout, after checking its size and digest against its descriptor.
fn blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().unwrap();
    let hex_digest = digest.strip_prefix("sha256:").expect("sha256 digests");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex_digest)).unwrap();
    assert_eq!(bytes.len() as u64, descriptor["size"].as_u64().unwrap(), "size of {digest}");
    assert_eq!(hex(&Sha256::digest(&bytes)), hex_digest, "content of {digest}");
    bytes
}

fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    serde_json::from_slice(bytes).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The final stage `FROM scratch AS <target>` of the Dockerfile, as the image it declares.
#[derive(Debug, Default)]
struct Stage {
    labels: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    user: String,
    exposed: BTreeSet<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    /// Destination path -> the owner `COPY --chown` gives it (root when not given).
    copies: BTreeMap<String, String>,
}

impl Stage {
    fn of(target: &str, args: &BTreeMap<&str, &str>) -> Stage {
        let dockerfile = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile")).unwrap();
        // Continuation lines joined; comments dropped.
        let joined = dockerfile
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("\\\n", " ");
        let mut stage = None::<Stage>;
        for line in joined.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            if instruction.eq_ignore_ascii_case("FROM") {
                if stage.is_some() {
                    break;
                }
                if rest == format!("scratch AS {target}") {
                    stage = Some(Stage::default());
                }
                continue;
            }
            let Some(stage) = stage.as_mut() else { continue };
            let words = || shlex::split(&substitute(rest, args)).expect("shell-like words");
            match instruction {
                "LABEL" => stage.labels.extend(words().into_iter().map(pair)),
                "ENV" => stage.env.extend(words().into_iter().map(pair)),
                "USER" => stage.user = rest.to_string(),
                "EXPOSE" => stage.exposed.extend(rest.split_whitespace().map(|p| format!("{p}/tcp"))),
                "ENTRYPOINT" => stage.entrypoint = serde_json::from_str(rest).unwrap(),
                "CMD" => stage.cmd = serde_json::from_str(rest).unwrap(),
                "COPY" => {
                    let words = words();
                    let chown = words.iter().find_map(|w| w.strip_prefix("--chown=")).unwrap_or("0:0");
                    let destination = words.last().unwrap().trim_start_matches('/').to_string();
                    stage.copies.insert(destination, chown.to_string());
                }
                "ARG" => {}
                other => panic!("the test does not know the Dockerfile instruction {other}"),
            }
        }
        stage.unwrap_or_else(|| panic!("the Dockerfile has no stage `FROM scratch AS {target}`"))
    }
}

fn pair(word: String) -> (String, String) {
    let (key, value) = word.split_once('=').expect("KEY=value");
    (key.to_string(), value.to_string())
}

fn substitute(text: &str, args: &BTreeMap<&str, &str>) -> String {
    args.iter().fold(text.to_string(), |text, (name, value)| text.replace(&format!("${{{name}}}"), value))
}

/// ELF program header type of the dynamic loader request: a static binary has none.
const PT_INTERP: u32 = 3;

fn is_static_elf(binary: &[u8]) -> bool {
    assert_eq!(&binary[..4], b"\x7fELF", "an ELF binary");
    assert_eq!(binary[4], 2, "64-bit");
    let u16_at = |at: usize| u16::from_le_bytes(binary[at..at + 2].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(binary[at..at + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        u32::from_le_bytes(binary[at..at + 4].try_into().unwrap()) != PT_INTERP
    })
}

fn check(name: &str) {
    let image = Image::open(name);
    let config = &image.config["config"];
    let revision = image.label("org.opencontainers.image.revision").to_string();

    assert_eq!(image.reference, format!("ghcr.io/veche-dev/{name}:{VERSION}"), "the name the chart and operator use");
    assert_eq!(image.config["os"], "linux");
    assert_eq!(image.config["architecture"], "amd64");

    // What the Dockerfile's final stage declares, the built image has.
    let args = BTreeMap::from([("VERSION", VERSION), ("VECHE_GIT_COMMIT", revision.as_str())]);
    let stage = Stage::of(name, &args);
    assert_eq!(config["User"], stage.user, "{name}: user");
    assert_eq!(config["Entrypoint"], serde_json::json!(stage.entrypoint), "{name}: entrypoint");
    assert_eq!(config["Cmd"], serde_json::json!(stage.cmd), "{name}: cmd");
    let exposed: BTreeSet<String> = config["ExposedPorts"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(exposed, stage.exposed, "{name}: exposed ports");
    let env: BTreeMap<String, String> = config["Env"]
        .as_array()
        .map(|e| e.iter().map(|v| pair(v.as_str().unwrap().to_string())).filter(|(k, _)| k != "PATH").collect())
        .unwrap_or_default();
    assert_eq!(env, stage.env, "{name}: environment");
    for (key, value) in &stage.labels {
        assert_eq!(image.label(key), value, "{name}: label {key}");
    }

    // Non-root, by number (a restricted pod's runAsNonRoot can only check a number).
    let (uid, gid) = stage.user.split_once(':').unwrap();
    assert!(uid.parse::<u32>().unwrap() > 0 && gid.parse::<u32>().unwrap() > 0, "{name}: numeric non-root user");

    // OCI labels a registry shows: source, version, licenses.
    assert_eq!(image.label("org.opencontainers.image.version"), VERSION);
    assert_eq!(image.label("org.opencontainers.image.licenses"), "Apache-2.0");
    assert_eq!(image.label("org.opencontainers.image.source"), "https://github.com/veche-dev/veche");

    // The files are exactly what the stage copies (and their parent directories), owned
    // as it says; no shell anywhere.
    let files = image.files();
    for (destination, owner) in &stage.copies {
        let (uid, gid, _, _) = files.get(destination).unwrap_or_else(|| panic!("{name}: no {destination}"));
        assert_eq!(format!("{uid}:{gid}"), *owner, "{name}: owner of {destination}");
    }
    let regular: BTreeSet<&str> =
        files.iter().filter(|(_, (_, _, _, kind))| !kind.is_dir()).map(|(path, _)| path.as_str()).collect();
    let copied: BTreeSet<&str> = stage
        .copies
        .keys()
        .map(String::as_str)
        .filter(|p| files.get(*p).is_some_and(|(_, _, _, kind)| !kind.is_dir()))
        .collect();
    assert_eq!(regular, copied, "{name}: files beyond what the Dockerfile copies");
    for path in files.keys() {
        let file = path.rsplit('/').next().unwrap();
        assert!(!SHELLS.contains(&file), "{name}: a shell in the image: {path}");
    }

    // The binary is static (no loader to find in `scratch`) and says what it is.
    let entrypoint = stage.entrypoint[0].trim_start_matches('/');
    let binary = image.file(entrypoint);
    assert!(is_static_elf(&binary), "{name}: {entrypoint} asks for a dynamic loader");
    let (uid, _, mode, _) = files[entrypoint];
    assert_eq!(uid, 0, "{name}: the binary belongs to root, so the service user cannot change it");
    assert_eq!(mode & 0o022, 0, "{name}: the binary is writable by others");
    let run = tempfile_with(&binary);
    let out = Command::new(&run).arg("--version").output().unwrap();
    assert!(out.status.success(), "{name} --version: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{name} {VERSION} (commit {revision})"));
    let _ = std::fs::remove_file(&run);

    assert!(
        image.compressed_bytes <= MAX_COMPRESSED_BYTES,
        "{name}: {} bytes to pull, over {MAX_COMPRESSED_BYTES}",
        image.compressed_bytes
    );
    println!("{}: {:.1} MB to pull", image.reference, image.compressed_bytes as f64 / 1e6);
}

fn tempfile_with(bytes: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::temp_dir().join(format!("veche-image-binary-{}-{}", std::process::id(), bytes.len()));
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn the_veche_image_is_the_dockerfiles_static_non_root_and_shell_free() {
    check("veche");
}

#[test]
fn the_operator_image_is_the_dockerfiles_static_non_root_and_shell_free() {
    check("veche-operator");
}

#[test]
fn both_images_are_listed_with_this_release() {
    let listed: Vec<Value> = json(&std::fs::read(images_dir().join("images.json")).unwrap());
    let names: BTreeSet<&str> = listed.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, IMAGES.into_iter().collect());
    for image in &listed {
        assert_eq!(image["version"], VERSION);
        assert!(Path::new(image["archive"].as_str().unwrap()).is_file(), "{image}: archive");
    }
}
