/* fake mm/gup.c */
static int check_vma_flags(unsigned long vm_flags, unsigned long gup_flags)
{
	int write = gup_flags & 1;

	if (vm_flags & 2)
		return -14;

	if (write) {
		if (!(vm_flags & 4))
			return -14;
	}
	return 0;
}

int pin_user_pages(unsigned long start, unsigned long gup_flags)
{
	return check_vma_flags(start, gup_flags);
}
