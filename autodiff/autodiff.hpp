#pragma once
// The whole scalar engine: Tape, Var, the ops, gradient() and check_gradient().
#include "autodiff/gradient.hpp"
#include "autodiff/gradient_check.hpp"
#include "autodiff/ops.hpp"
#include "autodiff/tape.hpp"
#include "autodiff/var.hpp"
