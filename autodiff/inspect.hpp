#pragma once
// Seeing inside a recording: graph pictures (to_dot), the backward pass explained
// (explain_backward, chain_rule), anomaly mode (DetectAnomaly), tape statistics (tape_stats).
#include "autodiff/inspect/explain.hpp"     // explain_backward, chain_rule
#include "autodiff/inspect/graph_dot.hpp"   // to_dot: Graphviz pictures
#include "autodiff/inspect/notes.hpp"       // RecordDetails, DetectAnomaly, Label, name
#include "autodiff/inspect/tape_stats.hpp"  // tape_stats
