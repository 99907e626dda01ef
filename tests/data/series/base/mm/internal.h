/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef __MM_INTERNAL_H
#define __MM_INTERNAL_H

extern bool mirrored_kernelcore;

static inline bool vma_soft_dirty_enabled(struct vm_area_struct *vma)
{
	return false;
}

#endif	/* __MM_INTERNAL_H */
