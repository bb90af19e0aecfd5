//! `check_invariants`: recounts everything the core keeps incrementally and checks the
//! rules no decision may break. Tests and the simulator run it after every event.

use crate::cluster::MILLI;
use crate::core::Core;
use crate::ids::{FlavorIdx, JobIdx, NodeIdx, TenantIdx};
use crate::job::JobState;

impl Core {
    /// Checks: no GPU (or fraction), CPU or memory double-booked; every running gang
    /// complete on nodes of its flavor; usage equals the sum of allocations; quotas
    /// respected; queue and counters consistent; indexes equal a recount.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.cluster.check_indexes()?;
        self.check_preemptible_running()?;
        let cl = &self.cluster;
        let mut gpu_used: Vec<Vec<u32>> = cl.nodes.iter().map(|n| vec![0; n.gpus as usize]).collect();
        let mut cpus_used = vec![0u64; cl.nodes.len()];
        let mut mem_used = vec![0u64; cl.nodes.len()];
        let nf = cl.flavors.len();
        let mut own = vec![0u64; self.tenants.len() * nf];
        let (mut pending, mut running, mut held, mut stopping) = (0, 0, 0, 0);
        let mut allocated = 0;
        for (ji, job) in self.jobs.iter().enumerate() {
            let Some(job) = job else { continue };
            let j = JobIdx::from(ji);
            if self.by_id.get(&job.id) != Some(&j) {
                return Err(format!("job {} is not indexed by its id", job.id));
            }
            match job.state {
                JobState::Pending | JobState::Held => {
                    if job.alloc.is_some() {
                        return Err(format!("job {} is {} but holds resources", job.id, job.state.name()));
                    }
                    if job.state == JobState::Pending {
                        pending += 1;
                    } else {
                        held += 1;
                    }
                }
                JobState::Running | JobState::Stopping => {
                    if job.state == JobState::Running {
                        running += 1;
                    } else {
                        stopping += 1;
                    }
                    // A preempted job hands its resources over at once; others keep
                    // theirs until they report.
                    let Some(alloc) = job.alloc.as_ref() else {
                        if job.state == JobState::Running {
                            return Err(format!("job {} runs without an allocation", job.id));
                        }
                        continue;
                    };
                    allocated += 1;
                    if alloc.slots.len() != job.shape.replicas as usize {
                        return Err(format!("gang {} has {} of {} replicas placed", job.id, alloc.slots.len(), job.shape.replicas));
                    }
                    for s in &alloc.slots {
                        let node = cl.node(s.node);
                        if node.flavor != alloc.flavor {
                            return Err(format!("job {} has a replica on {} of another flavor", job.id, node.name));
                        }
                        if job.shape.milli > 0 {
                            if s.milli != job.shape.milli || s.gpus != 0 {
                                return Err(format!("job {} slot does not match its fraction", job.id));
                            }
                            gpu_used[s.node.ix()][s.frac_gpu as usize] += u32::from(s.milli);
                        } else {
                            if s.gpus.count_ones() != job.shape.gpus {
                                return Err(format!("job {} slot has {} GPUs, wants {}", job.id, s.gpus.count_ones(), job.shape.gpus));
                            }
                            for g in 0..node.gpus {
                                if s.gpus & (1 << g) != 0 {
                                    gpu_used[s.node.ix()][g as usize] += u32::from(MILLI);
                                }
                            }
                        }
                        cpus_used[s.node.ix()] += u64::from(job.shape.cpus);
                        mem_used[s.node.ix()] += job.shape.mem_mib;
                    }
                    own[job.tenant.ix() * nf + alloc.flavor.ix()] += job.shape.total_milli();
                    if !self.ends.contains(&(job.expected_end(), j.0)) {
                        return Err(format!("job {} missing from the end-time index", job.id));
                    }
                    if !self.flavor_ends.holds(alloc.flavor, job.expected_end(), j.0, job.tenant, job.shape.total_milli()) {
                        return Err(format!("job {} missing from its flavor's end-time index", job.id));
                    }
                }
            }
        }
        for (i, used) in gpu_used.iter().enumerate() {
            let n = NodeIdx::from(i);
            let node = cl.node(n);
            for (g, &u) in used.iter().enumerate() {
                if u > u32::from(MILLI) {
                    return Err(format!("GPU {g} of {} is booked {u} milli (more than one GPU)", node.name));
                }
                let free = cl.gpu_free(n)[g];
                if u32::from(free) + u != u32::from(MILLI) {
                    return Err(format!("GPU {g} of {}: {free} free + {u} used != 1000", node.name));
                }
            }
            if cpus_used[i] + u64::from(cl.cpus_free(n)) != u64::from(node.cpus) {
                return Err(format!("node {}: CPUs used + free != CPUs", node.name));
            }
            if mem_used[i] + cl.mem_free(n) != node.memory_mib {
                return Err(format!("node {}: memory used + free != memory", node.name));
            }
        }
        for t in 0..self.tenants.len() {
            for f in 0..nf {
                let (ti, fi) = (TenantIdx::from(t), FlavorIdx::from(f));
                let mut sum = 0;
                let mut stack = vec![ti];
                while let Some(x) = stack.pop() {
                    sum += own[x.ix() * nf + f];
                    stack.extend(self.tenants.tenants[x.ix()].children.iter().copied());
                }
                if sum != self.tenants.usage(ti, fi) {
                    return Err(format!("tenant `{}` usage differs from its jobs' allocations", self.tenants.tenants[t].path));
                }
            }
        }
        self.tenants.check()?;
        if pending != self.pending_count() || pending != self.queue.len() {
            return Err(format!("{pending} pending jobs, counter {}, queue {}", self.pending_count(), self.queue.len()));
        }
        self.queue.check()?;
        if running != self.running_count() || held != self.held_count() || stopping != self.stopping_count() {
            return Err("job state counters differ from a recount".into());
        }
        if self.ends.len() != allocated || self.flavor_ends.len() != allocated {
            return Err("end-time index holds jobs that are not running".into());
        }
        for r in self.resv.iter() {
            let job = self.jobs[r.job.ix()].as_ref().ok_or("reservation of a forgotten job")?;
            if job.state != JobState::Pending {
                return Err(format!("job {} holds a reservation but is {}", job.id, job.state.name()));
            }
            // A reservation whose start has passed (jobs overran) is recomputed by the
            // next pass; the guarantee is about starts still to come.
            if r.active && r.valid && r.at > self.now {
                for &(n, _) in &r.nodes {
                    if self.resv.on_node(n).is_none() {
                        return Err(format!("active reservation of job {} does not own node {}", job.id, self.cluster.node(n).name));
                    }
                    // The reserved GPUs are free at `at` by the running jobs' walltimes:
                    // nothing that outlives the reservation took them.
                    let (need, at) = self.resv.on_node(n).expect("owned");
                    let free = crate::backfill::free_by(n, at, &self.cluster, &self.node_jobs);
                    if free < need {
                        return Err(format!(
                            "reservation of job {} counts on {need} GPUs of {} at {at}, but only {free} will be free then",
                            job.id,
                            self.cluster.node(n).name
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
