/* Syscall probes for tests/seccomp_default.rs: run inside a container, each named probe
 * makes one call and prints NAME=ok or NAME=ERRNO_NAME. Probes that change the process
 * (namespaces, personality, tracing) run in a forked child, so every probe starts from
 * the same state. Built static (cc -static) so that it runs on the busybox image. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/reboot.h>

static long r(long v) { return v < 0 ? -errno : 0; }

/* Runs f in a child and returns what it returned (errno values fit an exit code). */
static long in_child(long (*f)(void)) {
    pid_t p = fork();
    if (p < 0) return -errno;
    if (p == 0) _exit((int)-f());
    int st;
    if (waitpid(p, &st, 0) < 0) return -errno;
    return WIFEXITED(st) ? -WEXITSTATUS(st) : -1000 - WTERMSIG(st);
}

static long keyctl_(void) { return r(syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0)); }
static long add_key_(void) { return r(syscall(SYS_add_key, "user", "husk-probe", "x", 1, -2)); }
static long request_key_(void) { return r(syscall(SYS_request_key, "user", "husk-none", NULL, 0)); }
static long pers_norandom_c(void) { return r(personality(ADDR_NO_RANDOMIZE)); }
static long personality_norandom(void) { return in_child(pers_norandom_c); }
static long personality_query(void) { return r(personality(0xffffffff)); }
static long pers_linux32_c(void) { return r(personality(PER_LINUX32)); }
static long personality_linux32(void) { return in_child(pers_linux32_c); }
static long traceme_c(void) { return r(ptrace(PTRACE_TRACEME, 0, 0, 0)); }
static long ptrace_traceme(void) { return in_child(traceme_c); }
static long ptrace_attach(void) {
    pid_t c = fork();
    if (c == 0) { pause(); _exit(0); }
    long v = r(ptrace(PTRACE_ATTACH, c, 0, 0));
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    return v;
}
static long process_vm_readv_(void) {
    char src[8] = "probe", dst[8];
    struct iovec l = {dst, 8}, rm = {src, 8};
    return r(syscall(SYS_process_vm_readv, getpid(), &l, 1, &rm, 1, 0));
}
static long kcmp_(void) { return r(syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 1, 1)); }
static long pidfd_getfd_(void) {
    int pfd = syscall(SYS_pidfd_open, getpid(), 0);
    if (pfd < 0) return -errno;
    long v = r(syscall(SYS_pidfd_getfd, pfd, 1, 0));
    close(pfd);
    return v;
}
static long mount_(void) {
    mkdir("/probe-m", 0700);
    return r(mount("none", "/probe-m", "tmpfs", 0, NULL));
}
/* An existing mount point, so that the kernel reaches its capability check. */
static long umount_(void) { return r(umount2("/dev/mqueue", MNT_DETACH)); }
static long unshare_mnt_c(void) { return r(unshare(CLONE_NEWNS)); }
static long unshare_mnt(void) { return in_child(unshare_mnt_c); }
static long unshare_uts_c(void) { return r(unshare(CLONE_NEWUTS)); }
static long unshare_uts(void) { return in_child(unshare_uts_c); }
static long unshare_user_c(void) { return r(unshare(CLONE_NEWUSER)); }
static long unshare_user(void) { return in_child(unshare_user_c); }
static long unshare_user_mnt_c(void) { return r(unshare(CLONE_NEWUSER | CLONE_NEWNS)); }
static long unshare_user_mnt(void) { return in_child(unshare_user_mnt_c); }
static long clone_flags(unsigned long flags) {
    long p = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (p == 0) _exit(0);
    if (p < 0) return -errno;
    waitpid(p, NULL, 0);
    return 0;
}
static long clone_plain(void) { return clone_flags(0); }
static long clone_newns(void) { return clone_flags(CLONE_NEWNS); }
static long clone_newuser(void) { return clone_flags(CLONE_NEWUSER); }
static long clone3_(void) {
    uint64_t args[11] = {0};
    args[4] = SIGCHLD; /* exit_signal */
    long p = syscall(SYS_clone3, args, sizeof args);
    if (p == 0) _exit(0);
    if (p < 0) return -errno;
    waitpid(p, NULL, 0);
    return 0;
}
static long setns_(void) {
    int fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    long v = r(setns(fd, CLONE_NEWUTS));
    close(fd);
    return v;
}
static long pivot_root_(void) { return r(syscall(SYS_pivot_root, "/probe-nothing", "/probe-nothing")); }
static long chroot_c(void) { return r(chroot("/")); }
static long chroot_(void) { return in_child(chroot_c); }
static long reboot_(void) {
    return r(syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, 0));
}
static long init_module_(void) { return r(syscall(SYS_init_module, NULL, 0, "")); }
static long finit_module_(void) { return r(syscall(SYS_finit_module, -1, "", 0)); }
static long delete_module_(void) { return r(syscall(SYS_delete_module, "husk_none", 0)); }
static long kexec_load_(void) { return r(syscall(SYS_kexec_load, 0, 0, NULL, 0)); }
static long clock_settime_(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return r(clock_settime(CLOCK_REALTIME, &t));
}
static long settimeofday_(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    struct { long s, us; } tv = {t.tv_sec, t.tv_nsec / 1000};
    return r(syscall(SYS_settimeofday, &tv, NULL));
}
static long swapon_(void) { return r(syscall(SYS_swapon, "/probe-nothing", 0)); }
static long acct_(void) { return r(syscall(SYS_acct, NULL)); }
static long iopl_(void) { return r(syscall(SYS_iopl, 3)); }
static long ioperm_(void) { return r(syscall(SYS_ioperm, 0x80, 1, 1)); }
static long userfaultfd_(void) {
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC);
    if (fd < 0) return -errno;
    close(fd);
    return 0;
}
static long io_uring_setup_(void) {
    char params[120] = {0};
    long fd = syscall(SYS_io_uring_setup, 1, params);
    if (fd < 0) return -errno;
    close(fd);
    return 0;
}
static long sethostname_(void) { return r(sethostname("probe", 5)); }
static long open_by_handle_at_(void) {
    struct { unsigned int bytes; int type; unsigned char h[8]; } fh = {8, 1, {0}};
    return r(syscall(SYS_open_by_handle_at, AT_FDCWD, &fh, O_RDONLY));
}
static long vhangup_(void) { return in_child((long (*)(void))vhangup); }
static long quotactl_(void) { return r(syscall(SYS_quotactl, 0x800007 /* Q_SYNC */, NULL, 0, NULL)); }
static long bpf_(void) {
    char attr[128] = {0};
    return r(syscall(SYS_bpf, 0 /* MAP_CREATE */, attr, sizeof attr));
}
static long perf_event_open_(void) {
    char attr[128] = {0};
    ((uint32_t *)attr)[1] = 128; /* size */
    long fd = syscall(SYS_perf_event_open, attr, 0, -1, -1, 0);
    if (fd < 0) return -errno;
    close(fd);
    return 0;
}
static long move_pages_(void) { return r(syscall(SYS_move_pages, 0, 0, NULL, NULL, NULL, 0)); }
static long vmsplice_(void) {
    int p[2];
    if (pipe(p) < 0) return -errno;
    char b[4] = "abc";
    struct iovec v = {b, 3};
    long n = r(syscall(SYS_vmsplice, p[1], &v, 1, 0));
    close(p[0]);
    close(p[1]);
    return n;
}
static long mknod_null_(void) {
    long v = r(mknod("/probe-null", S_IFCHR | 0666, makedev(1, 3)));
    unlink("/probe-null");
    return v;
}
static long unknown_nr(void) { return r(syscall(1023)); }
/* Ordinary calls a program makes. */
static long ordinary(void) {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    char b[64];
    if (fd < 0 || read(fd, b, sizeof b) < 0) return -errno;
    close(fd);
    struct stat st;
    if (fstatat(AT_FDCWD, "/", &st, 0) < 0) return -errno;
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m, 4096, PROT_READ) < 0 || munmap(m, 4096) < 0) return -errno;
    if (getpid() < 0 || getuid() < 0) return -errno;
    return 0;
}
static long sockets(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), u[2];
    if (s < 0) return -errno;
    close(s);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, u) < 0) return -errno;
    close(u[0]);
    close(u[1]);
    return 0;
}
static long fork_exec(void) {
    pid_t p = fork();
    /* itself, asked for no probe: prints nothing, exits 0 */
    if (p == 0) { execl("/proc/self/exe", "probe", "none", NULL); _exit(127); }
    int st;
    if (p < 0 || waitpid(p, &st, 0) < 0) return -errno;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}
static long newer_fd_calls(void) {
    long fd = syscall(SYS_memfd_create, "probe", 1 /* MFD_CLOEXEC */);
    if (fd < 0) return -errno;
    close(fd);
    long pfd = syscall(SYS_pidfd_open, getpid(), 0);
    if (pfd < 0) return -errno;
    if (syscall(SYS_pidfd_send_signal, pfd, 0, NULL, 0) < 0) return -errno;
    close(pfd);
    if (syscall(SYS_faccessat2, AT_FDCWD, "/", F_OK, 0) < 0) return -errno;
    char sx[256];
    if (syscall(SYS_statx, AT_FDCWD, "/", 0, 0x7ff, sx) < 0) return -errno;
    if (syscall(SYS_close_range, 1000, 1001, 0) < 0) return -errno;
    char rnd[8];
    if (syscall(SYS_getrandom, rnd, 8, 0) < 0) return -errno;
    return 0;
}
static long setrlimit_(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_CORE, &rl);
    return r(setrlimit(RLIMIT_CORE, &rl));
}
static long chown_(void) { return r(fchownat(AT_FDCWD, "/", 0, 0, 0)); }
static long seccomp_status(void) {
    char b[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n < 0) return -errno;
    b[n] = 0;
    char *s = strstr(b, "\nSeccomp:");
    return s && strtol(s + 9, NULL, 10) == 2 ? 0 : -ENOENT;
}

struct probe { const char *name; long (*f)(void); };
static const struct probe PROBES[] = {
#define P(n, f) {n, f},
    P("keyctl", keyctl_) P("add_key", add_key_) P("request_key", request_key_)
    P("personality_norandom", personality_norandom) P("personality_query", personality_query)
    P("personality_linux32", personality_linux32)
    P("ptrace_traceme", ptrace_traceme) P("ptrace_attach", ptrace_attach)
    P("process_vm_readv", process_vm_readv_) P("kcmp", kcmp_) P("pidfd_getfd", pidfd_getfd_)
    P("mount", mount_) P("umount", umount_)
    P("unshare_mnt", unshare_mnt) P("unshare_uts", unshare_uts) P("unshare_user", unshare_user)
    P("unshare_user_mnt", unshare_user_mnt)
    P("clone_plain", clone_plain) P("clone_newns", clone_newns) P("clone_newuser", clone_newuser)
    P("clone3", clone3_) P("setns", setns_) P("pivot_root", pivot_root_) P("chroot", chroot_)
    P("reboot", reboot_) P("init_module", init_module_) P("finit_module", finit_module_)
    P("delete_module", delete_module_) P("kexec_load", kexec_load_)
    P("clock_settime", clock_settime_) P("settimeofday", settimeofday_)
    P("swapon", swapon_) P("acct", acct_) P("iopl", iopl_) P("ioperm", ioperm_)
    P("userfaultfd", userfaultfd_) P("io_uring_setup", io_uring_setup_)
    P("sethostname", sethostname_) P("open_by_handle_at", open_by_handle_at_)
    P("vhangup", vhangup_) P("quotactl", quotactl_) P("bpf", bpf_)
    P("perf_event_open", perf_event_open_) P("move_pages", move_pages_) P("vmsplice", vmsplice_)
    P("mknod_null", mknod_null_) P("unknown_nr", unknown_nr)
    P("ordinary", ordinary) P("sockets", sockets) P("fork_exec", fork_exec)
    P("newer_fd_calls", newer_fd_calls) P("setrlimit", setrlimit_) P("chown", chown_)
    P("seccomp_filtered", seccomp_status)
};

int main(int argc, char **argv) {
    size_t n = sizeof PROBES / sizeof PROBES[0];
    for (size_t i = 0; i < n; i++) {
        const struct probe *p = &PROBES[i];
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++) wanted |= !strcmp(argv[a], p->name);
        if (!wanted) continue;
        long v = p->f();
        printf("%s=%s\n", p->name, v == 0 ? "ok" : v <= -1000 ? "signal" : strerrorname_np((int)-v));
    }
    return 0;
}
