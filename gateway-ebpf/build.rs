//! Rebuild the programs when bpf-linker changes: its LLVM decides the object's bytes.
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
