//! Which traced syscalls the raw syscall programs take over (tracer-ebpf
//! `programs::syscalls`: `sys_enter_btf` and `sys_exit_btf` on `raw_syscalls:sys_enter` and
//! `sys_exit`), written into the `SYSCALL_KINDS` global, or why the classic `syscalls:*`
//! programs stay. A classic syscall tracepoint formats a record for every call before its
//! program runs; the raw ones read the registers instead (BENCHMARKS.md has the cost of
//! each).

use tracer_common::{
    EventKind, Member,
    abi::{SYSCALL_SLOTS, SyscallRole, TRACED_SYSCALLS, syscall_slot},
    members::{ENTRY_FRAME_MEMBERS, RAW_SYSCALL_MEMBERS},
};

use crate::host::btf::StructOffsets;

/// What the raw syscall programs take over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallPlan {
    /// The `SYSCALL_KINDS` global: all untraced when the classic programs stay.
    pub kinds: [u8; SYSCALL_SLOTS],
    /// The event kinds the raw programs emit: both ends of each recv-family syscall.
    pub taken: Vec<EventKind>,
    /// Why the classic programs stay, when they do.
    pub classic_why: Option<String>,
    /// Whether a task's standing in the traced syscalls is read from its entry frame
    /// (`abi::SYSCALL_FROM_REGS`): journey mode on the raw programs, which then leave
    /// `raw_syscalls:sys_enter` out (journeys use no entry event).
    pub from_regs: bool,
}

impl SyscallPlan {
    /// The classic programs, for `why`.
    pub fn classic(why: String) -> Self {
        Self {
            kinds: [syscall_slot::UNTRACED; SYSCALL_SLOTS],
            taken: Vec::new(),
            classic_why: Some(why),
            from_regs: false,
        }
    }

    /// The raw programs take over every traced syscall of this architecture whose two
    /// events are `available` (`--without` leaves one to its classic program), and in
    /// journey mode the wait syscalls; `offsets` must locate the registers they read. In
    /// journey mode, unless `entry_marks`, the entries are read from the entry frame where
    /// `offsets` locate it.
    pub fn raw(
        offsets: &StructOffsets,
        available: &[EventKind],
        journey_mode: bool,
        entry_marks: bool,
    ) -> Self {
        if !cfg!(target_arch = "x86_64") {
            return Self::classic("the raw syscall programs read x86-64 registers".to_owned());
        }
        if let Some(member) = RAW_SYSCALL_MEMBERS
            .iter()
            .find(|&&member| offsets.member(member).is_none())
        {
            return Self::classic(format!("kernel BTF lacks {}", member_name(*member)));
        }
        let mut plan = Self {
            kinds: [syscall_slot::UNTRACED; SYSCALL_SLOTS],
            taken: Vec::new(),
            classic_why: None,
            from_regs: journey_mode
                && !entry_marks
                && ENTRY_FRAME_MEMBERS
                    .iter()
                    .all(|&member| offsets.member(member).is_some()),
        };
        for syscall in TRACED_SYSCALLS {
            let Some(nr) = syscall.number() else {
                continue;
            };
            let slot = &mut plan.kinds[nr as usize];
            match syscall.role {
                SyscallRole::Recv { enter, exit }
                    if available.contains(&enter) && available.contains(&exit) =>
                {
                    *slot = enter as u8;
                    plan.taken.extend([enter, exit]);
                }
                SyscallRole::Wait if journey_mode => *slot = syscall_slot::WAIT,
                _ => {}
            }
        }
        plan
    }

    /// Whether the raw programs are to be attached.
    pub fn is_raw(&self) -> bool {
        self.classic_why.is_none()
    }

    /// Whether the raw programs track the wait syscalls too (journey mode).
    pub fn takes_waits(&self) -> bool {
        self.kinds.contains(&syscall_slot::WAIT)
    }

    /// The raw programs to attach, `(program, raw tracepoint)`: both, or the exit's alone
    /// when entries are read from the entry frame.
    pub fn raw_programs(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        let from_regs = self.from_regs;
        tracer_common::abi::RAW_SYSCALL_PROGRAMS
            .into_iter()
            .filter(move |program| !(from_regs && *program == tracer_common::abi::RAW_SYS_ENTER))
    }
}

/// A member as `struct.field` along its first path.
pub fn member_name(member: Member) -> String {
    member.spec().paths[0]
        .iter()
        .map(|(name, field)| format!("{name}.{field}"))
        .collect::<Vec<_>>()
        .join(" + ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets_with(members: &[Member]) -> StructOffsets {
        let mut offsets = StructOffsets::default();
        for member in members {
            offsets.members[*member as usize] = 8 * (*member as u32);
        }
        offsets
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn takes_over_the_recv_family_and_in_journey_mode_the_waits() {
        let offsets = offsets_with(&RAW_SYSCALL_MEMBERS);
        let plan = SyscallPlan::raw(&offsets, &EventKind::ALL, true, false);
        assert!(plan.is_raw() && plan.takes_waits());
        assert_eq!(
            plan.kinds[45],
            EventKind::SysEnterRecvfrom as u8,
            "recvfrom"
        );
        assert_eq!(plan.kinds[0], EventKind::SysEnterRead as u8, "read");
        assert_eq!(plan.kinds[232], syscall_slot::WAIT, "epoll_wait");
        assert_eq!(plan.kinds[1], syscall_slot::UNTRACED, "write");
        assert_eq!(plan.taken.len(), 10);
        assert!(plan.taken.contains(&EventKind::SysExitReadv));

        let events = SyscallPlan::raw(&offsets, &EventKind::ALL, false, false);
        assert_eq!(
            events.kinds[232],
            syscall_slot::UNTRACED,
            "event mode tracks no waits"
        );
        assert!(!events.takes_waits());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_syscall_missing_one_end_stays_classic() {
        let offsets = offsets_with(&RAW_SYSCALL_MEMBERS);
        let available: Vec<_> = EventKind::ALL
            .into_iter()
            .filter(|kind| *kind != EventKind::SysExitRead)
            .collect();
        let plan = SyscallPlan::raw(&offsets, &available, true, false);
        assert_eq!(plan.kinds[0], syscall_slot::UNTRACED);
        assert!(!plan.taken.contains(&EventKind::SysEnterRead));
        assert!(plan.taken.contains(&EventKind::SysEnterRecvfrom));
    }

    #[test]
    fn without_the_registers_in_btf_the_classic_programs_stay() {
        let offsets = offsets_with(&[Member::RegsDi, Member::RegsDx, Member::RegsOrigAx]);
        let plan = SyscallPlan::raw(&offsets, &EventKind::ALL, true, false);
        assert!(!plan.is_raw());
        assert!(plan.taken.is_empty());
        assert!(
            plan.kinds
                .iter()
                .all(|&slot| slot == syscall_slot::UNTRACED)
        );
        if cfg!(target_arch = "x86_64") {
            assert_eq!(
                plan.classic_why.as_deref(),
                Some("kernel BTF lacks task_struct.thread_info + thread_info.status")
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn journey_mode_reads_entries_from_the_frame_and_leaves_sys_enter_out() {
        let mut members = RAW_SYSCALL_MEMBERS.to_vec();
        members.extend(ENTRY_FRAME_MEMBERS);
        let offsets = offsets_with(&members);
        let programs = |plan: &SyscallPlan| plan.raw_programs().map(|(p, _)| p).collect::<Vec<_>>();

        let journeys = SyscallPlan::raw(&offsets, &EventKind::ALL, true, false);
        assert!(journeys.from_regs);
        assert_eq!(programs(&journeys), ["sys_exit_btf"]);

        let marked = SyscallPlan::raw(&offsets, &EventKind::ALL, true, true);
        assert!(!marked.from_regs, "entry marks asked for");
        let events = SyscallPlan::raw(&offsets, &EventKind::ALL, false, false);
        assert!(!events.from_regs, "event mode shows each entry");
        assert_eq!(programs(&events), ["sys_enter_btf", "sys_exit_btf"]);

        let no_ax = offsets_with(&RAW_SYSCALL_MEMBERS);
        let plan = SyscallPlan::raw(&no_ax, &EventKind::ALL, true, false);
        assert!(plan.is_raw() && !plan.from_regs, "BTF without pt_regs.ax");
        assert_eq!(programs(&plan), ["sys_enter_btf", "sys_exit_btf"]);
        assert!(!SyscallPlan::classic("x".to_owned()).from_regs);
    }
}
