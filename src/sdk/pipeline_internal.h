/*
 * What the engine needs of a pipeline: planning it into a job graph (one node per stage
 * per sequence, barriers only for BatchNorm statistics in training mode).
 */
#ifndef RVATTN_SRC_SDK_PIPELINE_INTERNAL_H
#define RVATTN_SRC_SDK_PIPELINE_INTERNAL_H

#include "attention/attention_internal.h"
#include "graph/graph.h"
#include "rvattn/pipeline.h"

/*
 * Plans pipeline p over io (io->seqs: the batch; the queries are the pipeline input,
 * outputs go to seqs[s].out). io->seqs may keep 0 strides: the planner normalises its own
 * copy with the pipeline's dims. Validates every sequence like rva__attention_plan and
 * records failures per sequence. Intermediate rows live in the graph arena. Stage i's
 * random stream is io->stream + i. p must outlive the job. Returns non-OK only for
 * job-wide failures (RVA_EEMPTY for an empty pipeline or one without attention stage,
 * RVA_ENOMEM, RVA_EOVERFLOW).
 */
rva_status rva__pipeline_plan(const rva_pipeline *p, rva__plan_io *io, rva__graph *g);

#endif
