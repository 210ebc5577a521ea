//! A throw-away PostgreSQL server per test (Debian's `postgresql` package), run as the `postgres` user when
//! the tests run as root: the store tests' and the TLS tests' one start-up.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, stderr, stdout};

pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// What a server has beyond initdb's defaults.
#[derive(Default)]
pub struct Setup<'a> {
    /// Lines added to postgresql.conf (`ssl = on`, …).
    pub conf: &'a [&'a str],
    /// pg_hba.conf in place of initdb's, which trusts every local connection.
    pub hba: Option<&'a str>,
    /// Files copied into the data directory, keeping their mode (a key must stay 0600): settings such as
    /// `ssl_cert_file` name them relative to it.
    pub files: &'a [&'a Path],
}

fn root_user() -> bool {
    stdout(&Command::new("id").arg("-u").output().unwrap()).trim() == "0"
}

impl Postgres {
    /// initdb's server: trust, no TLS.
    pub fn start() -> Postgres {
        Postgres::start_with(&Setup::default())
    }

    pub fn start_with(setup: &Setup) -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").exists())
            .expect("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `make setup`");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let root_user = root_user();
        if root_user {
            let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status();
            // Every parent must be traversable by the postgres user.
            let _ = Command::new("chmod").args(["755"]).arg(dir.path()).status();
        }
        let out = Self::as_pg(root_user, &bin.join("initdb"))
            .args(["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", stderr(&out));
        let mut conf = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
        for line in setup.conf {
            writeln!(conf, "{line}").unwrap();
        }
        if let Some(hba) = setup.hba {
            std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        }
        for file in setup.files {
            std::fs::copy(file, data.join(file.file_name().unwrap())).unwrap();
        }
        if root_user {
            let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data).status();
        }
        let mut pg = Postgres { bin, data, port: free_port(), child: None, _dir: dir };
        pg.start_server();
        pg
    }

    fn as_pg(root_user: bool, program: &Path) -> Command {
        if root_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    pub fn start_server(&mut self) {
        let child = Self::as_pg(root_user(), &self.bin.join("postgres"))
            .args([
                "-D",
                self.data.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-h",
                "127.0.0.1",
                "-k",
                self.data.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fast shutdown (SIGINT): clients are disconnected, the server is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Signal the server itself (its pid is the first line of postmaster.pid): runuser does not pass
            // SIGINT on.
            let pid = std::fs::read_to_string(self.data.join("postmaster.pid"))
                .ok()
                .and_then(|s| s.lines().next().map(str::to_string))
                .unwrap_or_else(|| c.id().to_string());
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            let _ = c.wait();
        }
        // postgres itself may still be exiting; wait until the port is closed.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The superuser's URL over TCP, no password, no TLS parameters.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` with psql as the superuser over the Unix socket, which every pg_hba.conf here trusts (TCP
    /// may ask for TLS and a password); its rows, unaligned.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", self.data.to_str().unwrap(), "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres"])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql: {}", stderr(&out));
        stdout(&out)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
