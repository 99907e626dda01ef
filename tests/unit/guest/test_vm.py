

def test_a_lost_waitpid_race_reads_as_gone_not_a_traceback():
    import pexpect

    from pinrig.guest import vm

    class Reaped:
        def isalive(self):
            raise pexpect.ExceptionPexpect('isalive() encountered condition where "terminated" '
                                           "is 0, but there was no child process")

    class Running:
        def isalive(self):
            return True
    assert vm.child_alive(Reaped()) is False
    assert vm.child_alive(Running()) is True
