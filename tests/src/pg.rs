//! PostgreSQL: a real server inside a [`TestNet`] namespace (from a seeded template cluster),
//! psql and the raw wire client run inside a cgroup, and the policy text of a postgres
//! resource.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::{ClientRun, TestNet, bin_path, client_in, remove_stale, require_root, run, unique};

/// PostgreSQL binaries of the Debian package.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Roles of the test cluster: (user, password, upstream auth method).
pub const PG_SCRAM: (&str, &str) = ("app", "app-secret");
pub const PG_MD5: (&str, &str) = ("md5user", "md5-secret");
pub const PG_PLAIN: (&str, &str) = ("plainuser", "plain-secret");

/// Sample data: the customers the masking and guardrail tests look at.
const PG_SEED: &str = r#"
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN PASSWORD 'app-secret';
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5-secret';
SET password_encryption = 'scram-sha-256';
CREATE ROLE plainuser LOGIN PASSWORD 'plain-secret';
CREATE TABLE customers (
  id int PRIMARY KEY, name text, email text, card text, ssn text, phone text, iban text,
  order_no text, notes text
);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com', '4111 1111 1111 1111', '123-45-6789', '+1 415 555 0132', 'DE89370400440532013000', 'ORD-2024-000123', 'prefers email'),
  (2, 'Alan Turing', 'alan.turing@bletchley.org', '5500-0000-0000-0004', '219-09-9999', '(415) 555-0199', 'GB82WEST12345698765432', 'ORD-2024-000124', 'uuid 3f2b8c1e-9a4d-4e6b-8f7a-2c1d0e9b8a76'),
  (3, 'Grace Hopper', 'grace@navy.mil', '4111111111111112', '000-12-3456', '555-01', 'XX00NOTANIBAN', '1234567890123456', 'version 1.2.3.4 at 2024-05-01T12:00:00Z');
GRANT ALL ON customers TO app, md5user, plainuser;
CREATE TABLE profiles (id int PRIMARY KEY, date_of_birth date, api_token text, jwt text, shipped date);
INSERT INTO profiles VALUES
  (1, '1815-12-10', 'AKIAIOSFODNN7EXAMPLE', 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U', '2024-05-01');
GRANT ALL ON profiles TO app, md5user, plainuser;
CREATE TABLE accounts (id int PRIMARY KEY, balance int);
INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g;
GRANT ALL ON accounts TO app, md5user, plainuser;
"#;

const PG_HBA: &str = "local all all trust\n\
host all md5user all md5\n\
host all plainuser all password\n\
host all all all scram-sha-256\n";

fn pg_template() -> &'static PathBuf {
    static TEMPLATE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        require_root();
        // Templates of earlier test processes that are gone (one is left behind per process).
        remove_stale("sluice-pg-template-");
        let dir = std::env::temp_dir().join(format!("sluice-pg-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("chown").args(["postgres:postgres"]).arg(&dir));
        let as_pg = |args: &str| run(Command::new("runuser").args(["-u", "postgres", "--", "sh", "-c", args]));
        as_pg(&format!("{PG_BIN}/initdb -D {} -U postgres --auth=trust -E UTF8 >/dev/null", dir.display()));
        std::fs::write(dir.join("pg_hba.conf"), PG_HBA).unwrap();
        as_pg(&format!(
            "{PG_BIN}/pg_ctl -D {d} -o \"-c listen_addresses='' -k {d}\" -w -l {d}/log start >/dev/null",
            d = dir.display()
        ));
        let seed = dir.join("seed.sql");
        std::fs::write(&seed, PG_SEED).unwrap();
        run(Command::new("chown").arg("postgres:postgres").arg(&seed));
        as_pg(&format!("psql -X -q -v ON_ERROR_STOP=1 -h {} -U postgres -d postgres -f {} >/dev/null", dir.display(), seed.display()));
        as_pg(&format!("{PG_BIN}/pg_ctl -D {} -m fast -w stop >/dev/null", dir.display()));
        dir
    })
}

/// A PostgreSQL 15 server inside a [`TestNet`] namespace, at `peer_v4:5432`.
pub struct PgServer {
    dir: PathBuf,
    pub addr: String,
    pub host: String,
    /// The `pg_ctl start` command, run in the namespace (again by [`PgServer::resume`]).
    start_cmd: (String, String),
}

impl PgServer {
    pub fn start(net: &TestNet) -> PgServer {
        Self::start_with(net, "")
    }

    /// Starts with extra server options (e.g. TLS settings).
    pub fn start_with(net: &TestNet, options: &str) -> PgServer {
        let template = pg_template();
        let dir = std::env::temp_dir().join(unique("sluice-pg-"));
        run(Command::new("cp").arg("-a").arg(template).arg(&dir));
        let cmd = format!(
            "{PG_BIN}/pg_ctl -D {d} -o \"-c listen_addresses={a} -p 5432 -k {d} {options}\" -w -t 30 -l {d}/log start >/dev/null",
            d = dir.display(),
            a = net.peer_v4
        );
        let pg = PgServer {
            dir,
            addr: format!("{}:5432", net.peer_v4),
            host: net.peer_v4.clone(),
            start_cmd: (net.ns.clone(), cmd),
        };
        pg.resume();
        pg
    }

    /// Stops the server (fast shutdown: connections are closed); [`PgServer::resume`] starts
    /// it again on the same data.
    pub fn pause(&self) {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D"])
            .arg(&self.dir)
            .args(["-m", "fast", "-w", "stop"]));
    }

    pub fn resume(&self) {
        let (ns, cmd) = &self.start_cmd;
        run(Command::new("ip").args([
            "netns", "exec", ns, "runuser", "-u", "postgres", "--", "sh", "-c", cmd,
        ]));
    }

    /// The directory of the server's local (unix) socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A libpq connection string for `user`/`password` to this server.
    pub fn conninfo(&self, user: &str, password: &str) -> String {
        format!(
            "host={} port=5432 user={user} password={password} dbname=postgres connect_timeout=5",
            self.host
        )
    }

    /// Runs a PostgreSQL client program as the superuser over the Unix socket.
    pub fn admin_cmd(&self, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--", program, "-h"])
            .arg(&self.dir)
            .args(["-p", "5432"])
            .args(args)
            .output()
            .expect("admin command")
    }

    /// Runs SQL as the superuser over the Unix socket (never through sluice): ground truth.
    pub fn admin_sql(&self, sql: &str) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-X", "-A", "-t", "-h"])
            .arg(&self.dir)
            .args(["-U", "postgres", "-d", "postgres", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "admin sql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D"])
            .arg(&self.dir)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL v3 StartupMessage for `user` and `database`, as raw bytes.
pub fn pg_startup_packet(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for p in ["user", user, "database", database] {
        body.extend(p.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend(body);
    packet
}

/// psql inside `cgroup`: unaligned, tuples only, verbose errors (SQLSTATE shown), one `-c` per
/// statement, all in one session.
pub fn psql_in(cgroup: &Path, conninfo: &str, sql: &[&str]) -> ClientRun {
    let mut argv = vec![
        "psql",
        "-X",
        "-A",
        "-t",
        "-v",
        "VERBOSITY=verbose",
        "-d",
        conninfo,
    ];
    for s in sql {
        argv.extend(["-c", s]);
    }
    client_in(cgroup, &[], &argv)
}

/// Policy text for a postgres resource at `pg` with injected credentials of `role`.
pub fn pg_resource(name: &str, pg: &PgServer, credentials: &str) -> String {
    format!(
        "  - name: {name}\n    protocol: postgres\n    match:\n      - {{ address: \"{}\", port: 5432 }}\n    credentials: {credentials}\n",
        pg.host
    )
}

/// The policy default that lets every SQL statement kind through (guardrail findings are still
/// denied): for tests about the protocol rather than the policy. The built-in default denies
/// kinds no rule names.
pub const DEFAULT_ALLOW: &str = "guardrails:\n  default: allow\n";

/// `credentials:` value injecting a role's password inline.
pub fn inject(role: (&str, &str)) -> String {
    format!(
        "{{ mode: inject, user: {}, password: {{ value: \"{}\" }} }}",
        role.0, role.1
    )
}

/// Runs the raw wire client (`pg-wire`) inside `cgroup` against `addr` with a script of
/// message batches (see `tests/src/bin/pg-wire.rs`); returns its JSON (`messages`: every
/// message received, tag and hex body).
pub fn pg_wire(cgroup: &Path, addr: &str, user: &str, db: &str, script: &Value) -> Value {
    use std::io::Write as _;
    let mut child = Command::new(bin_path("pg-wire"))
        .arg("--cgroup")
        .arg(cgroup)
        .args([addr, user, db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running pg-wire");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.to_string().as_bytes())
        .expect("script to pg-wire");
    let out = child.wait_with_output().expect("pg-wire");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or_else(|e| {
        panic!(
            "pg-wire printed no JSON ({e}): {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
