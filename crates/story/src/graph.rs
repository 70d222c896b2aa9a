//! The agent graph: edges, cycles, reachability.

use crate::Story;

/// Finds a cycle among `edges` (adjacency by index); returns it as a list of indices.
pub fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let n = edges.len();
    let mut mark = vec![Mark::New; n];
    let mut stack: Vec<usize> = Vec::new();
    for start in 0..n {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS with explicit child cursors.
        let mut cursor: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::Active;
        stack.push(start);
        while let Some((node, child)) = cursor.last_mut() {
            let node = *node;
            if let Some(&next) = edges[node].get(*child) {
                *child += 1;
                match mark[next] {
                    Mark::New => {
                        mark[next] = Mark::Active;
                        stack.push(next);
                        cursor.push((next, 0));
                    }
                    Mark::Active => {
                        let pos = stack.iter().position(|&x| x == next).unwrap_or(0);
                        return Some(stack[pos..].to_vec());
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
                cursor.pop();
            }
        }
    }
    None
}

/// Agents upstream of `index`, breadth first (nearest first).
pub fn upstream(story: &Story, index: usize) -> Vec<&str> {
    let mut seen = vec![false; story.agents.len()];
    let mut queue = std::collections::VecDeque::from([index]);
    let mut out = Vec::new();
    seen[index] = true;
    while let Some(i) = queue.pop_front() {
        for r in &story.agents[i].from {
            if let Some(&j) = story.by_name.get(r.agent.as_str()) {
                if !seen[j] {
                    seen[j] = true;
                    out.push(&*story.agents[j].name);
                    queue.push_back(j);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cycles_and_accepts_dags() {
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![]]), None);
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![1]]), Some(vec![1, 2]));
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0]));
        assert_eq!(find_cycle(&[vec![1, 2], vec![3], vec![3], vec![]]), None);
    }
}
