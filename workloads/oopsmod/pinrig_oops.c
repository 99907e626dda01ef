// SPDX-License-Identifier: GPL-2.0
/*
 * pinrig_oops - make the running kernel print a crash report on demand.
 *
 * For the rig's crash-report corpus (tests/data/oops/): every report class is produced by the
 * real kernel's own reporting code, so the console output is exactly what a kernel developer
 * would see.  Each trigger is its own noinline function so the guilty frame has a stable name.
 *
 *   echo TRIGGER > /proc/pinrig_oops          (from a process: syscall context)
 *   insmod pinrig_oops.ko trigger=TRIGGER     (from module init)
 *   cat /proc/pinrig_oops                     (lists the triggers)
 *   echo leak-pin > /proc/pinrig_oops         (pins the writer's buffer page, never unpins:
 *                                              a leaked FOLL_PIN for the rig's pin accounting)
 *
 * Fatal ones (an Oops/BUG with oops=panic) end the guest; warn, refcount, sched-atomic,
 * soft-lockup, rcu-stall and the KFENCE ones print their report and return.
 */
#include <linux/delay.h>
#include <linux/jiffies.h>
#ifdef CONFIG_KFENCE
#include <linux/kfence.h>	/* 5.12+; 5.10 has no KFENCE */
#endif
#include <linux/kernel.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poison.h>
#include <linux/preempt.h>
#include <linux/proc_fs.h>
#include <linux/refcount.h>
#include <linux/sched.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <linux/version.h>

static char trigger[32];
module_param_string(trigger, trigger, sizeof(trigger), 0444);
MODULE_PARM_DESC(trigger, "run this trigger from module init");

static unsigned int spin_seconds = 12;
module_param(spin_seconds, uint, 0644);
MODULE_PARM_DESC(spin_seconds, "how long soft-lockup / rcu-stall spin with preemption off");

static unsigned int max_depth = 1U << 20;
module_param(max_depth, uint, 0644);
MODULE_PARM_DESC(max_depth, "recursion limit of stack-overflow (never reached by default)");

/* Opaque to the compiler, so that no trigger is folded away or diagnosed at build time. */
static int pinrig_true = 1;
static int pinrig_zero;
static void *pinrig_null;

struct pinrig_obj {
	long a, b, c;
	struct list_head node;
};

static noinline void pinrig_warn(void)
{
	WARN(READ_ONCE(pinrig_true), "pinrig_oops: deliberate WARN\n");
}

static noinline void pinrig_bug(void)
{
	BUG_ON(READ_ONCE(pinrig_true));
}

static noinline long pinrig_null_deref(void)
{
	struct pinrig_obj *o = READ_ONCE(pinrig_null);

	WRITE_ONCE(o->c, 1);
	return o->c;
}

/* Use after vfree: the page is unmapped at once, so the read faults on a kernel address. */
static noinline long pinrig_paging_request(void)
{
	long *p = vmalloc(PAGE_SIZE);
	long *q;

	if (!p)
		return -ENOMEM;
	vfree(p);
	pr_info("pinrig_oops: reading freed vmalloc memory at %px\n", p);
	READ_ONCE(*p);
	/* Not reached unless a stale TLB entry hid the unmap: read a vmalloc guard page instead. */
	q = vmalloc(PAGE_SIZE);
	if (!q)
		return -ENOMEM;
	return READ_ONCE(q[PAGE_SIZE / sizeof(long)]);
}

/* What a use-after-list_del looks like: a LIST_POISON pointer is non-canonical on x86-64. */
static noinline long pinrig_gpf(void)
{
	struct list_head *poisoned = READ_ONCE(pinrig_null) + (unsigned long)LIST_POISON1;

	return READ_ONCE(*(long *)poisoned);
}

static int pinrig_sink;

static noinline void pinrig_divide_error(void)
{
	WRITE_ONCE(pinrig_sink, 1000 / READ_ONCE(pinrig_zero));
}

/* Names matter: syzkaller-style titles skip frames containing invalid_op, list_add, list_del,
 * refcount, schedule ... so the triggers below avoid those words. */
static noinline void pinrig_ud2(void)
{
	asm volatile("ud2");
	unreachable();
}

static LIST_HEAD(pinrig_list);

/* list_add onto a node whose prev pointer was overwritten: CONFIG_DEBUG_LIST catches it. */
static noinline void pinrig_enqueue_corrupted(void)
{
	struct pinrig_obj *a = kzalloc(sizeof(*a), GFP_KERNEL);
	struct pinrig_obj *b = kzalloc(sizeof(*b), GFP_KERNEL);

	if (!a || !b)
		return;
	list_add(&a->node, &pinrig_list);
	WRITE_ONCE(a->node.prev, (struct list_head *)0xbad);
	list_add(&b->node, &pinrig_list);
}

/* list_del of an entry that was already deleted: its pointers are LIST_POISON. */
static noinline void pinrig_dequeue_twice(void)
{
	struct pinrig_obj *a = kzalloc(sizeof(*a), GFP_KERNEL);

	if (!a)
		return;
	list_add(&a->node, &pinrig_list);
	list_del(&a->node);
	list_del(&a->node);
}

/* refcount_inc() of a zero count: taking a reference on an object already dead. */
static noinline void pinrig_get_dead_object(void)
{
	refcount_t r = REFCOUNT_INIT(0);

	refcount_inc(&r);
}

static noinline void pinrig_sleep_in_atomic(void)
{
	preempt_disable();
	schedule_timeout_uninterruptible(1);
	/* after reporting, the scheduler resets the preempt count: do not underflow it */
	if (preempt_count())
		preempt_enable();
}

/* Spin with preemption off: a soft lockup after 2*watchdog_thresh, an RCU stall after
 * rcu_cpu_stall_timeout; returns after spin_seconds. */
static noinline void pinrig_spin(void)
{
	unsigned long end = jiffies + READ_ONCE(spin_seconds) * HZ;

	preempt_disable();
	while (time_before(jiffies, end))
		cpu_relax();
	preempt_enable();
}

static noinline int pinrig_stack_overflow(unsigned int depth)
{
	volatile char frame[512];

	frame[0] = (char)depth;
	if (depth >= READ_ONCE(max_depth))
		return frame[0];
	return pinrig_stack_overflow(depth + 1) + frame[0];
}

#ifdef CONFIG_KFENCE
/* A kmalloc() object that KFENCE guards (boot with kfence.sample_interval=N): plain allocations
 * are freed until the sampling gate hands one to KFENCE. */
static void *pinrig_kfence_object(size_t size)
{
	int i;

	for (i = 0; i < 5000; i++) {
		void *p = kmalloc(size, GFP_KERNEL);

		if (p && is_kfence_address(p))
			return p;
		kfree(p);
		usleep_range(500, 1000);
	}
	pr_err("pinrig_oops: no KFENCE allocation (is kfence.sample_interval set?)\n");
	return NULL;
}

/* KFENCE places the object against one of its guard pages: read just across that edge. */
static noinline long pinrig_read_past_object(void)
{
	const size_t size = 64;
	char *p = pinrig_kfence_object(size);
	long v;

	if (!p)
		return 0;
	if (IS_ALIGNED((unsigned long)(p + size), PAGE_SIZE))
		v = READ_ONCE(p[size]);
	else
		v = READ_ONCE(p[-1]);
	kfree(p);
	return v;
}

static noinline long pinrig_read_freed_object(void)
{
	long *p = pinrig_kfence_object(64);

	if (!p)
		return 0;
	kfree(p);
	return READ_ONCE(p[0]);
}
#else
static noinline long pinrig_read_past_object(void)
{
	pr_err("pinrig_oops: this kernel has no CONFIG_KFENCE\n");
	return 0;
}

static noinline long pinrig_read_freed_object(void)
{
	return pinrig_read_past_object();
}
#endif

static noinline void pinrig_panic(void)
{
	panic("pinrig_oops: deliberate panic");
}

struct pinrig_trigger {
	const char *name;
	void (*fn)(void);
};

static void t_warn(void) { pinrig_warn(); }
static void t_bug(void) { pinrig_bug(); }
static void t_null(void) { pinrig_null_deref(); }
static void t_paging(void) { pinrig_paging_request(); }
static void t_gpf(void) { pinrig_gpf(); }
static void t_div(void) { pinrig_divide_error(); }
static void t_ud2(void) { pinrig_ud2(); }
static void t_list_add(void) { pinrig_enqueue_corrupted(); }
static void t_list_del(void) { pinrig_dequeue_twice(); }
static void t_refcount(void) { pinrig_get_dead_object(); }
static void t_sched(void) { pinrig_sleep_in_atomic(); }
static void t_spin(void) { pinrig_spin(); }
static void t_stack(void) { pinrig_stack_overflow(0); }
static void t_panic(void) { pinrig_panic(); }
static void t_kfence_oob(void) { pinrig_read_past_object(); }
static void t_kfence_uaf(void) { pinrig_read_freed_object(); }

static const struct pinrig_trigger triggers[] = {
	{ "warn", t_warn },
	{ "bug", t_bug },
	{ "null-deref", t_null },
	{ "paging-request", t_paging },
	{ "gpf", t_gpf },
	{ "divide-error", t_div },
	{ "invalid-opcode", t_ud2 },
	{ "list-add-corruption", t_list_add },
	{ "list-del-corruption", t_list_del },
	{ "refcount", t_refcount },
	{ "sched-atomic", t_sched },
	{ "soft-lockup", t_spin },
	{ "rcu-stall", t_spin },
	{ "stack-overflow", t_stack },
	{ "panic", t_panic },
	{ "kfence-oob", t_kfence_oob },
	{ "kfence-uaf", t_kfence_uaf },
};

static int pinrig_run(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(triggers); i++) {
		if (strcmp(name, triggers[i].name) == 0) {
			pr_info("pinrig_oops: trigger %s\n", name);
			triggers[i].fn();
			pr_info("pinrig_oops: trigger %s returned\n", name);
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * A pin taken and never dropped, the bug class the put_user_page() work was about ("a mistaken
 * put_page() ... a page that can never be evicted"): the rig's pin accounting must catch it.
 * The pages stay pinned for the life of the guest, on purpose.
 */
#define PINRIG_MAX_LEAKS 64
static struct page *pinrig_leaked[PINRIG_MAX_LEAKS];
static int pinrig_nleaked;

static noinline int pinrig_leak_pin(const char __user *ubuf)
{
	struct page *page;
	int ret;

	if (pinrig_nleaked >= PINRIG_MAX_LEAKS)
		return -ENOSPC;
	ret = pin_user_pages_fast((unsigned long)ubuf & PAGE_MASK, 1, FOLL_WRITE, &page);
	if (ret != 1)
		return ret < 0 ? ret : -EFAULT;
	pinrig_leaked[pinrig_nleaked++] = page;
	pr_info("pinrig_oops: leaked a pin on a page of pid %d (%d leaked)\n",
		current->pid, pinrig_nleaked);
	return 0;
}

static ssize_t pinrig_write(struct file *file, const char __user *ubuf, size_t len, loff_t *off)
{
	char buf[32];
	size_t n = min(len, sizeof(buf) - 1);
	int ret;

	if (copy_from_user(buf, ubuf, n))
		return -EFAULT;
	buf[n] = '\0';
	strim(buf);
	if (strcmp(strim(buf), "leak-pin") == 0)
		ret = pinrig_leak_pin(ubuf);
	else
		ret = pinrig_run(strim(buf));
	return ret ? ret : len;
}

static int pinrig_show(struct seq_file *m, void *v)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(triggers); i++)
		seq_printf(m, "%s\n", triggers[i].name);
	seq_puts(m, "leak-pin\n");
	return 0;
}

static int pinrig_open(struct inode *inode, struct file *file)
{
	return single_open(file, pinrig_show, NULL);
}

static const struct proc_ops pinrig_proc_ops = {
	.proc_open = pinrig_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = pinrig_write,
};

static struct proc_dir_entry *pinrig_entry;

static int __init pinrig_oops_init(void)
{
	pinrig_entry = proc_create("pinrig_oops", 0600, NULL, &pinrig_proc_ops);
	if (!pinrig_entry)
		return -ENOMEM;
	pr_info("pinrig_oops: loaded (write a trigger to /proc/pinrig_oops)\n");
	if (trigger[0] && pinrig_run(strim(trigger)) == -EINVAL) {
		proc_remove(pinrig_entry);
		pr_err("pinrig_oops: unknown trigger '%s'\n", trigger);
		return -EINVAL;
	}
	return 0;
}

static void __exit pinrig_oops_exit(void)
{
	proc_remove(pinrig_entry);
}

module_init(pinrig_oops_init);
module_exit(pinrig_oops_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("pinrig: trigger kernel crash reports on demand");
