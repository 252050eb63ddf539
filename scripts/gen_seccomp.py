"""Generate src/cellblock/sandbox/seccomp.json: an allow-list profile for a Python sandbox.

Starts from the calls Docker's default profile allows without extra capabilities, then removes
what a Python sandbox never needs and what has a history of kernel escapes (io_uring, keyctl,
bpf, userfaultfd, perf_event_open, ptrace and friends). Run it and commit the result:
    python scripts/gen_seccomp.py > src/cellblock/sandbox/seccomp.json
"""

import json

ALLOWED = """
accept accept4 access alarm arch_prctl bind brk capget capset chdir chmod chown clock_getres
clock_gettime clock_nanosleep close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_pwait epoll_pwait2 epoll_wait eventfd eventfd2
execve exit exit_group faccessat faccessat2 fadvise64 fallocate fchdir fchmod fchmodat
fchown fchownat fcntl fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat
fstatfs fsync ftruncate futex futex_waitv futimesat getcpu getcwd getdents getdents64 getegid
geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid getppid getpriority
getrandom getresgid getresuid getrlimit get_robust_list getrusage getsid getsockname getsockopt
gettid gettimeofday getuid getxattr ioctl ioprio_get kill lchown lgetxattr link linkat listen
listxattr llistxattr lremovexattr lseek lsetxattr lstat madvise membarrier mincore
mkdir mkdirat mlock mlock2 mlockall mmap mprotect mremap msgctl msgget msgrcv msgsnd msync
munlock munlockall munmap nanosleep newfstatat open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 poll ppoll prctl pread64 preadv preadv2 prlimit64 pselect6
pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recvfrom recvmmsg recvmsg
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_setaffinity sched_yield select semctl semget
semop semtimedop sendfile sendmmsg sendmsg sendto setfsgid setfsuid setgid setgroups setitimer
setpgid setpriority setregid setresgid setresuid setreuid setrlimit set_robust_list setsid
setsockopt set_tid_address setuid setxattr shmat shmctl shmdt shmget shutdown sigaltstack
signalfd signalfd4 socketpair splice stat statfs statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime times tkill truncate
umask uname unlink unlinkat utime utimensat utimes vfork vmsplice wait4 waitid write writev
""".split()

# Never allowed, listed so that a reviewer sees the intent (the default action refuses them).
# inotify and POSIX message queues are counted per uid on the host: every sandbox shares uid
# 10001, so one run could exhaust them for the others running at the same time.
DENIED = """
io_uring_setup io_uring_enter io_uring_register keyctl add_key request_key bpf userfaultfd
perf_event_open ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd open_by_handle_at
name_to_handle_at mount umount2 move_mount open_tree fsopen fsconfig fsmount fspick unshare setns
pivot_root chroot init_module finit_module delete_module kexec_load kexec_file_load reboot
swapon swapoff syslog acct quotactl iopl ioperm lookup_dcookie vhangup mbind set_mempolicy
get_mempolicy migrate_pages move_pages personality fanotify_init fanotify_mark clock_adjtime
clock_settime settimeofday adjtimex modify_ldt uselib ustat sysfs _sysctl nfsservctl
io_setup io_submit io_cancel io_destroy io_getevents io_pgetevents landlock_create_ruleset
memfd_secret process_madvise mount_setattr quotactl_fd
inotify_init inotify_init1 inotify_add_watch inotify_rm_watch
mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr
execveat
""".split()

CLONE_NS_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

# memfd_create only with MFD_NOEXEC_SEAL (Linux 6.3+) and without MFD_EXEC: an executable memfd
# lives on the kernel's internal mount, which is not noexec, so execveat(fd, "", AT_EMPTY_PATH)
# or execve("/proc/self/fd/N") would run a dropped binary despite the noexec tmpfs mounts.
# vm.memfd_noexec would do this by default, but it is not settable from inside a container.
MFD_NOEXEC_SEAL = 0x0008
MFD_EXEC = 0x0010

# socket only for these families. Every other family is kernel attack surface a Python program
# does not need (AF_ALG, AF_TIPC, AF_RDS, ... have a history of escapes), and AF_VSOCK is not
# confined by the network namespace: on a VM host it reaches the hypervisor's services.
SOCKET_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16}

# mknod/mknodat only for FIFOs (os.mkfifo) and regular files: never device nodes. (The tmpfs
# mounts are nodev, but gVisor's kernel does not honour nodev the way Linux does.)
S_IFMT = 0o170000
S_IFIFO = 0o010000
S_IFREG = 0o100000

# runsc (--oci-seccomp) resolves names in gVisor's own syscall table and silently drops names it
# does not know; the 2022 runsc calls pselect6 "pselect", so without the alias select.select()
# fails with EPERM inside gVisor. runc drops "pselect" in turn (Linux has no such name).
GVISOR_ALIASES = {"pselect6": "pselect"}
ALLOWED += [alias for name, alias in GVISOR_ALIASES.items() if name in ALLOWED]

assert not set(ALLOWED) & set(DENIED)

profile = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
    ],
    "syscalls": [
        {"names": sorted(ALLOWED), "action": "SCMP_ACT_ALLOW"},
        # clone without any namespace flag: threads and fork, never new namespaces
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        },
        # several conditions on one argument: any of them matches (runc and runsc alike)
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {"index": 0, "value": family, "valueTwo": 0, "op": "SCMP_CMP_EQ"}
                for family in sorted(SOCKET_FAMILIES.values())
            ],
        },
        {
            "names": ["memfd_create"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {
                    "index": 1,
                    "value": MFD_NOEXEC_SEAL | MFD_EXEC,
                    "valueTwo": MFD_NOEXEC_SEAL,
                    "op": "SCMP_CMP_MASKED_EQ",
                }
            ],
        },
        *(
            {
                "names": [name],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": index, "value": S_IFMT, "valueTwo": kind, "op": "SCMP_CMP_MASKED_EQ"}],
            }
            for name, index in (("mknod", 1), ("mknodat", 2))
            for kind in (S_IFIFO, S_IFREG, 0)
        ),
        # clone3 passes flags in memory that seccomp cannot inspect: ENOSYS makes libc fall back.
        # runsc (2022) returns EPERM for every refused call whatever errnoRet says, so glibc would
        # not fall back and no thread could start: docker.seccomp_profile("runsc") allows clone3
        # instead, which that gVisor does not implement (ENOSYS from its kernel; doctor checks).
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": sorted(DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
    ],
}
print(json.dumps(profile, indent=1))
