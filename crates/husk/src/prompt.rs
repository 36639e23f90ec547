//! Asking on the terminal: `husk login` without `-p` reads the password from the
//! controlling terminal (not stdin, which `--password-stdin` may use) with echo off.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;

/// Why nothing could be asked.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("no terminal to ask for the {0} on ({1}): give it with --{0} (or --password-stdin)")]
    NoTerminal(&'static str, io::Error),
    #[error("reading the {0} from the terminal: {1}")]
    Read(&'static str, io::Error),
}

/// The controlling terminal, for reading and writing (close-on-exec, as std opens files).
fn tty(what: &'static str) -> Result<File, PromptError> {
    File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| PromptError::NoTerminal(what, e))
}

/// Write `label` on the terminal and read one line back, echoed or not.
fn ask(label: &str, what: &'static str, echo: bool) -> Result<String, PromptError> {
    let mut t = tty(what)?;
    let fd = t.as_raw_fd();
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let have_termios = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if !echo && have_termios {
        let mut quiet = saved;
        quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
        quiet.c_lflag |= libc::ICANON;
        // TCSANOW: TCSAFLUSH would drop what was typed ahead.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let _ = write!(t, "{label}").and_then(|()| t.flush());
    let read = read_line(&mut t);
    if !echo && have_termios {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        // The newline the user typed was not echoed.
        let _ = writeln!(t);
    }
    let line = read.map_err(|e| PromptError::Read(what, e))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// One line, a byte at a time: what was typed ahead (the next answer) stays in the
/// terminal for the next prompt, where a buffered reader would swallow it.
fn read_line(t: &mut File) -> io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while t.read(&mut b)? == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    String::from_utf8(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub fn username() -> Result<String, PromptError> {
    ask("Username: ", "username", true)
}

pub fn password() -> Result<String, PromptError> {
    ask("Password: ", "password", false)
}
