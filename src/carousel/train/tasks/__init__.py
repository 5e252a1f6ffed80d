"""Registered tasks, one module each. Every module in this package is imported when the registry
is first read (``carousel.train.task_names()``), so a new task is one new file here::

    @register_task
    class MyTask(Task):
        \"\"\"One line shown by ``carousel --help``.\"\"\"
        name = "mytask"
        Options = MyOptions          # a frozen dataclass of option(...) fields
        ...
"""
