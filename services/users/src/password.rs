//! Password hashing: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), stored
//! as standard PHC strings.
//!
//! A hash takes tens of milliseconds of CPU on purpose, so it runs on the blocking pool,
//! and a semaphore admits one hash per core: a burst of logins queues instead of
//! starting hundreds of threads that each hold 19 MiB. Hashes of new passwords
//! (registration, reset) take at most half of those permits, so logins always have
//! cores of their own however many sign-ups arrive.
//!
//! The 19 MiB working memory is reused between hashes while logins keep coming, and
//! released as soon as none is waiting. Allocating it per hash made glibc keep every
//! freed buffer (the process grew to gigabytes under a login burst) and cost page faults.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as PHC_B64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Semaphore;

const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    permits: Semaphore,
    /// Taken before `permits` by hashes of new passwords: half the cores at most.
    new_password_permits: Semaphore,
    /// Working memory of finished hashes, kept only while more hashes are asked for.
    spare: Mutex<Vec<Memory>>,
    /// Hashes asked for and not yet finished (running or queued).
    demand: AtomicUsize,
}

impl Default for Passwords {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(cores),
                new_password_permits: Semaphore::new((cores / 2).max(1)),
                spare: Mutex::new(Vec::new()),
                demand: AtomicUsize::new(0),
            }),
        }
    }
}

fn params() -> Params {
    Params::new(19 * 1024, 2, 1, Some(HASH_LEN)).expect("OWASP argon2 parameters are valid")
}

/// Our parameters as they appear in a PHC string.
fn phc(salt: &[u8], hash: &[u8]) -> String {
    let p = params();
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        p.m_cost(),
        p.t_cost(),
        p.p_cost(),
        PHC_B64.encode(salt),
        PHC_B64.encode(hash)
    )
}

/// Argon2's working memory (19 MiB a hash), taken from the system allocator: freed, it
/// goes straight back to the system (glibc maps blocks this large on their own), where
/// the process allocator (mimalloc) would keep it for reuse and an idle server would sit
/// on it.
struct Memory {
    blocks: std::ptr::NonNull<Block>,
    len: usize,
}

// SAFETY: `Memory` owns its allocation exclusively, like a `Vec<Block>`.
unsafe impl Send for Memory {}

impl Memory {
    fn layout(len: usize) -> std::alloc::Layout {
        std::alloc::Layout::array::<Block>(len.max(1)).expect("argon2 memory fits the address space")
    }

    fn new(len: usize) -> Self {
        use std::alloc::GlobalAlloc;
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size; all-zero bytes are a valid `Block`
        // (`Block::default()` is zeros).
        let raw = unsafe { std::alloc::System.alloc_zeroed(layout) };
        let Some(blocks) = std::ptr::NonNull::new(raw.cast::<Block>()) else { std::alloc::handle_alloc_error(layout) };
        Self { blocks, len }
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl std::ops::Deref for Memory {
    type Target = [Block];
    fn deref(&self) -> &[Block] {
        // SAFETY: `len` initialised blocks live at `blocks` until drop.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for Memory {
    fn deref_mut(&mut self) -> &mut [Block] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_ptr(), self.len) }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        use std::alloc::GlobalAlloc;
        // SAFETY: allocated in `new` by the same allocator with the same layout.
        unsafe { std::alloc::System.dealloc(self.blocks.as_ptr().cast(), Self::layout(self.len)) }
    }
}

impl Passwords {
    /// Runs `work` with argon2 working memory of `blocks` blocks, on the blocking pool.
    async fn with_memory<T, F>(&self, blocks: usize, work: F) -> anyhow::Result<T>
    where
        F: FnOnce(&mut [Block]) -> anyhow::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner.clone();
        inner.demand.fetch_add(1, Ordering::SeqCst);
        // Whatever happens below, this call stops counting as demand.
        struct Done(Arc<Inner>);
        impl Drop for Done {
            fn drop(&mut self) {
                if self.0.demand.fetch_sub(1, Ordering::SeqCst) == 1 {
                    // Nobody else wants memory: give all of it back.
                    self.0.spare.lock().unwrap_or_else(|p| p.into_inner()).clear();
                }
            }
        }
        let done = Done(inner.clone());
        let _permit = inner.permits.acquire().await?;
        let worker = inner.clone();
        let result = tokio::task::spawn_blocking(move || {
            let reused = worker.spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let mut memory = match reused {
                Some(m) if m.len() == blocks => m,
                _ => Memory::new(blocks),
            };
            let result = work(&mut memory);
            if worker.demand.load(Ordering::SeqCst) > 1 {
                worker.spare.lock().unwrap_or_else(|p| p.into_inner()).push(memory);
            }
            result
        })
        .await?;
        drop(done);
        result
    }

    /// The PHC string of a new password.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let mut salt = [0u8; SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        let p = params();
        let _share = self.inner.new_password_permits.acquire().await?;
        self.with_memory(p.block_count(), move |memory| {
            let mut out = [0u8; HASH_LEN];
            Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
                .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(phc(&salt, &out))
        })
        .await
    }

    /// Checks a password against a stored hash. With no hash (no such user, or an account
    /// without a password) it checks against a dummy so the answer takes as long.
    pub async fn verify(&self, password: String, stored: Option<String>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash is unreadable: {e}"))?;
        let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored hash parameters: {e}"))?;
        let salt = parsed.salt.as_ref().map(|s| s.as_ref().to_vec()).unwrap_or_default();
        let expected = parsed.hash.as_ref().map(|h| h.as_bytes().to_vec()).unwrap_or_default();
        let algorithm = match parsed.algorithm.as_str() {
            "argon2id" => Algorithm::Argon2id,
            "argon2i" => Algorithm::Argon2i,
            "argon2d" => Algorithm::Argon2d,
            other => anyhow::bail!("stored hash uses {other}"),
        };
        anyhow::ensure!(!expected.is_empty(), "stored hash has no output");
        let ok = self
            .with_memory(params.block_count(), move |memory| {
                let mut out = vec![0u8; expected.len()];
                let params = Params::new(params.m_cost(), params.t_cost(), params.p_cost(), Some(expected.len()))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Argon2::new(algorithm, Version::V0x13, params)
                    .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(kit::secret::constant_time_eq(&out, &expected))
            })
            .await?;
        Ok(known && ok)
    }
}

/// A hash of a random password, made once with the same parameters as real ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut out = [0u8; HASH_LEN];
        let salt = [7u8; SALT_LEN];
        let _ = Argon2::new(Algorithm::Argon2id, Version::V0x13, params()).hash_password_into(
            kit::secret::new_token().as_bytes(),
            &salt,
            &mut out,
        );
        phc(&salt, &out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[tokio::test]
    async fn hashes_verify_and_use_argon2id_with_owasp_parameters() {
        let p = Passwords::default();
        let h = p.hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(p.verify("correct horse battery".into(), Some(h.clone())).await.unwrap());
        assert!(!p.verify("wrong".into(), Some(h)).await.unwrap());
        assert!(!p.verify("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn our_strings_are_standard_phc_both_ways() {
        let p = Passwords::default();
        // Ours, checked by the argon2 crate's own verifier...
        let ours = p.hash("correct horse battery".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse battery", &parsed).is_ok());
        // ...and the crate's own strings, checked by ours.
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();
        assert!(p.verify("correct horse battery".into(), Some(theirs.clone())).await.unwrap());
        assert!(!p.verify("correct horse batterY".into(), Some(theirs)).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_is_given_back_when_nobody_waits() {
        let p = Passwords::default();
        let hashes: Vec<_> = (0..6)
            .map(|i| {
                let p = p.clone();
                tokio::spawn(async move { p.hash(format!("password number {i}")).await.unwrap() })
            })
            .collect();
        for h in hashes {
            h.await.unwrap();
        }
        assert_eq!(p.inner.demand.load(Ordering::SeqCst), 0);
        assert!(p.inner.spare.lock().unwrap().is_empty(), "idle: no working memory kept");
    }
}
