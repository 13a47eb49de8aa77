// The memory controller a Raspberry Pi's kernel turns off (cgroup_disable=memory): found on fixture
// trees, said once with its fix. The real kernel case: test/integration/vm.test.ts.
import { describe, expect, it } from 'vitest';
import { controllerReport, MEMORY_FIX, memoryOffWarning } from '../../agent/collectors/cgroup-controllers';

const reader = (files: Record<string, string>) => (f: string) => files[f];
const V2_ALL = 'cpuset cpu io memory hugetlb pids rdma misc\n';
const V2_PI = 'cpuset cpu io hugetlb pids rdma misc\n';

describe('cgroup controllers', () => {
  it('finds every needed controller on a full v2 root: no warning', () => {
    const r = controllerReport('/cg', reader({ '/cg/cgroup.controllers': V2_ALL, '/proc/cmdline': 'console=ttyAMA0' }));
    expect(r).toEqual({ layout: 'v2 (unified)', have: V2_ALL.trim().split(' '), missing: [], memoryDisabledAtBoot: false });
    expect(memoryOffWarning(r)).toBeUndefined();
  });

  it('explains a Pi booted with cgroup_disable=memory and names the fix', () => {
    const r = controllerReport('/cg', reader({ '/cg/cgroup.controllers': V2_PI, '/proc/cmdline': 'console=serial0,115200 cgroup_disable=memory rootwait' }));
    expect(r).toMatchObject({ missing: ['memory'], memoryDisabledAtBoot: true });
    const w = memoryOffWarning(r)!;
    expect(w).toMatch(/^container memory metrics are off: the kernel command line disables the memory cgroup controller/);
    expect(w).toContain(MEMORY_FIX);
    expect(w).toContain('/boot/firmware/cmdline.txt');
  });

  it('takes the last word: cgroup_enable=memory after the disable turns it back on', () => {
    expect(controllerReport('/cg', reader({ '/cg/cgroup.controllers': V2_ALL, '/proc/cmdline': 'cgroup_disable=memory cgroup_enable=memory cgroup_memory=1' })).memoryDisabledAtBoot).toBe(false);
    expect(controllerReport('/cg', reader({ '/cg/cgroup.controllers': V2_PI, '/proc/cmdline': 'cgroup_enable=memory cgroup_disable=cpu,memory' })).memoryDisabledAtBoot).toBe(true);
    expect(controllerReport('/cg', reader({ '/cg/cgroup.controllers': V2_ALL, '/proc/cmdline': 'cgroup_disable=memoryx' })).memoryDisabledAtBoot).toBe(false);
  });

  it('a memory controller missing for another reason gets the delegation hint, not the Pi fix', () => {
    const w = memoryOffWarning(controllerReport('/cg', reader({ '/cg/cgroup.controllers': V2_PI })))!;
    expect(w).toContain('no memory controller');
    expect(w).not.toContain('cmdline.txt');
  });

  it('reads v1 trees (blkio named io) and reports no cgroupfs as none, with no memory warning', () => {
    const v1 = controllerReport('/cg', reader({ '/cg/cpu/tasks': '', '/cg/cpuacct/tasks': '', '/cg/blkio/tasks': '', '/cg/pids/tasks': '' }));
    expect(v1).toMatchObject({ layout: 'v1', have: ['cpu', 'cpuacct', 'io', 'pids'], missing: ['memory'] });
    expect(memoryOffWarning(v1)).toContain('cgroup v1 root has no memory controller');
    const none = controllerReport('/cg', reader({}));
    expect(none).toMatchObject({ layout: 'none', missing: ['cpu', 'memory', 'io', 'pids'] });
    expect(memoryOffWarning(none)).toBeUndefined();
  });
});
