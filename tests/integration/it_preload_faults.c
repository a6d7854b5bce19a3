/* SPDX-License-Identifier: MIT */
/* it_preload_faults.c - being written. */
int main(void);
int main(void)
{
	return 77;
}
