//! Throwaway TLS certificates made with openssl.

use std::{path::PathBuf, process::Command};

use crate::{run, temp_dir};

/// A throwaway CA and a server certificate for `ip` (and the name `db.test`), from openssl.
pub struct TestCerts {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    pub fn new(ip: &str) -> TestCerts {
        let dir = temp_dir();
        let sh = format!(
            "set -e; cd {d}
             openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=sluice-test-ca 2>/dev/null
             openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr -subj /CN=db.test 2>/dev/null
             printf 'subjectAltName=IP:{ip},DNS:db.test\\n' > san.ext
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null
             chmod 755 {d}; chmod 600 server.key",
            d = dir.display()
        );
        run(Command::new("sh").args(["-c", &sh]));
        TestCerts {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            dir,
        }
    }

    /// A copy of the key pair PostgreSQL can read (it insists on owning a 0600 key).
    pub fn for_postgres(&self) -> (PathBuf, PathBuf) {
        let (cert, key) = (self.dir.join("pg.pem"), self.dir.join("pg.key"));
        std::fs::copy(&self.cert, &cert).unwrap();
        std::fs::copy(&self.key, &key).unwrap();
        run(Command::new("chown")
            .arg("postgres:postgres")
            .arg(&cert)
            .arg(&key));
        (cert, key)
    }
}
