"""A mixin for small config-defined objects (schedules, criteria, quantizers)."""


class ConfigEquality:
    """Equality, hashing and repr from `get_config()`.

    Two objects of the same type with the same config are interchangeable, so
    they compare equal; `repr` shows the constructor call that rebuilds one.
    """

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
