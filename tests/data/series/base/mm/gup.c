// SPDX-License-Identifier: GPL-2.0-only
#include <linux/mm.h>
#include "internal.h"

static int check_vma_flags(struct vm_area_struct *vma, unsigned long gup_flags)
{
	vm_flags_t vm_flags = vma->vm_flags;
	int write = (gup_flags & FOLL_WRITE);

	if (vm_flags & (VM_IO | VM_PFNMAP))
		return -EFAULT;

	if (write) {
		if (!(vm_flags & VM_WRITE))
			return -EFAULT;
	}
	return 0;
}

long pin_user_pages(unsigned long start, unsigned long nr_pages,
		    unsigned int gup_flags, struct page **pages)
{
	if (!(gup_flags & FOLL_PIN))
		gup_flags |= FOLL_PIN;
	return __gup_longterm_locked(current->mm, start, nr_pages, pages,
				     NULL, gup_flags);
}
