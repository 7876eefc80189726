"""gpumix.validation: the shared checks name the argument and tag their errors with it."""
import math

import pytest

from gpumix.validation import check_bool, check_float, check_int, check_text, field_of, tagged


@pytest.mark.parametrize("check, args, error, match", [
    (check_int, ("epochs", 0, 1), ValueError, "epochs must be >= 1, got 0"),
    (check_int, ("epochs", True, 1), TypeError, "epochs must be an int, got True"),
    (check_float, ("gamma", 2.0, 0.0, 1.0), ValueError, r"gamma must be in \[0.0, 1.0\], got 2.0"),
    (check_float, ("lr", math.nan, 0.0, math.inf), ValueError, "lr must be >= 0.0, got nan"),
    (check_bool, ("resume", 1), TypeError, "resume must be a bool, got 1"),
    (check_text, ("output", ""), TypeError, "output must be a non-empty string, got ''"),
])
def test_a_refused_value_names_its_argument_and_is_tagged_with_it(check, args, error, match):
    with pytest.raises(error, match=match) as caught:
        check(*args)
    assert field_of(caught.value) == args[0]


def test_tagged_marks_and_returns_the_same_error():
    error = ValueError("crop must be 32")
    assert tagged(error, "crop") is error and field_of(error) == "crop"
    assert field_of(ValueError("untagged")) is None


def test_accepted_values_come_back_normalized():
    assert check_int("n", 3, 1) == 3 and isinstance(check_float("x", 1, 0.0, 2.0), float)
    assert check_text("p", "a") == "a" and check_text("p", None, optional=True) is None
