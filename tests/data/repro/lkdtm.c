/* A reproducer that crashes a kernel built with LKDTM (configs/kconfig/lkdtm.config, as in
 * kernels/src-6.1-debug.yaml) through the kernel's own crash-test driver, no module needed:
 * it writes a crash type to /sys/kernel/debug/provoke-crash/DIRECT.
 * Default: EXCEPTION (a NULL dereference: an Oops, fatal with the rig's oops=panic).
 * -DTRIGGER_WARN: WARNING instead (the guest lives on). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#ifdef TRIGGER_WARN
#define TRIGGER "WARNING"
#else
#define TRIGGER "EXCEPTION"
#endif
#define DIRECT "/sys/kernel/debug/provoke-crash/DIRECT"

int main(void)
{
	int fd;

	if (mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL) < 0 && errno != EBUSY)
		perror("mount debugfs");
	fd = open(DIRECT, O_WRONLY);
	if (fd < 0)
		return perror(DIRECT " (a kernel without CONFIG_LKDTM?)"), 1;
	if (write(fd, TRIGGER, strlen(TRIGGER)) < 0)
		perror("write " TRIGGER);
	close(fd);
	printf("lkdtm: wrote %s and lived\n", TRIGGER);
	return 0;
}
