//! Thin, safe wrappers over the few Unix calls pgm needs: who we are, which
//! user to become, whether a process lives.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// An OS account, as much of it as pgm needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The account of the effective user, as libpq resolves its default user name.
pub fn current_account() -> Option<Account> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    lookup(|pwd, buf, result| unsafe {
        libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result)
    })
}

pub fn account_named(name: &str) -> Option<Account> {
    let c_name = CString::new(name).ok()?;
    lookup(|pwd, buf, result| unsafe {
        libc::getpwnam_r(c_name.as_ptr(), pwd, buf.as_mut_ptr(), buf.len(), result)
    })
}

fn lookup(
    call: impl Fn(*mut libc::passwd, &mut [libc::c_char], *mut *mut libc::passwd) -> libc::c_int,
) -> Option<Account> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain old data; zeroed is a valid (empty) value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = call(&mut pwd, &mut buf, &mut result);
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: on success the string fields point into `buf`, which is alive here.
    let text = |ptr: *const libc::c_char| unsafe { CStr::from_ptr(ptr) }.to_string_lossy();
    Some(Account {
        name: text(pwd.pw_name).into_owned(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home: PathBuf::from(text(pwd.pw_dir).into_owned()),
    })
}

/// True while a process with this pid exists (it may belong to another user).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends a signal; a process that is already gone is not an error.
pub fn send_signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, signal) };
    }
}

pub fn chown(path: &std::path::Path, account: &Account) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid))
}

/// Free bytes for unprivileged writers on the file system holding `path`,
/// when the directory is writable by us.
pub fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: c_path is a valid C string; statvfs is plain old data.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let writable = unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } == 0;
    if !writable || unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// The OS user running the process that listens on a Unix socket, as the
/// kernel reports it for a connection to it (SO_PEERCRED).
pub fn socket_peer_user(socket: &std::path::Path) -> std::io::Result<String> {
    use std::os::fd::AsRawFd;
    let stream = std::os::unix::net::UnixStream::connect(socket)?;
    // SAFETY: ucred is plain old data; zeroed is a valid value.
    let mut credentials: libc::ucred = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: the pointers are to live locals of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut credentials as *mut libc::ucred).cast(),
            &mut length,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let uid = credentials.uid;
    lookup(|pwd, buf, result| unsafe {
        libc::getpwuid_r(uid, pwd, buf.as_mut_ptr(), buf.len(), result)
    })
    .map(|account| account.name)
    .ok_or_else(|| std::io::Error::other(format!("no account has user id {uid}")))
}
