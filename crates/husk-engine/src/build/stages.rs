//! Multi-stage builds: the instructions split at each FROM, the meta ARGs before the first
//! one, the stage `--target` names (default: the last), and the stages it needs — through
//! `FROM <stage>`, `COPY --from=<stage|index>` and `RUN --mount=from=<stage>` — so that the
//! others are never built.

use super::args::{expand_word, ExpandError};
use super::parse::{Containerfile, Instruction, Kind};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
pub struct Stage {
    /// Its position (what `--from=0` names).
    pub index: usize,
    /// `AS name`, lower case.
    pub name: Option<String>,
    /// The FROM instruction.
    pub from: Instruction,
    /// What follows FROM, up to the next one.
    pub steps: Vec<Instruction>,
}

/// The stages and the ARGs declared before the first FROM.
#[derive(Debug, Clone)]
pub struct Plan {
    pub meta_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    #[error("line {0}: only ARG may come before the first FROM")]
    BeforeFrom(usize),
    #[error("no FROM instruction")]
    NoFrom,
    #[error("--target {0}: no such stage")]
    NoTarget(String),
    #[error("line {line}: stage name {name:?} is used twice")]
    Duplicate { line: usize, name: String },
    #[error("line {line}: {source}")]
    Expand {
        line: usize,
        #[source]
        source: ExpandError,
    },
    #[error("line {line}: --from={from} names stage {from} itself or a later one")]
    Circular { line: usize, from: String },
}

pub fn plan(f: &Containerfile) -> Result<Plan, StageError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for i in &f.instructions {
        match (&i.kind, stages.last_mut()) {
            (Kind::From { alias, .. }, _) => {
                if let Some(a) = alias {
                    if stages.iter().any(|s| s.name.as_ref() == Some(a)) {
                        return Err(StageError::Duplicate {
                            line: i.line,
                            name: a.clone(),
                        });
                    }
                }
                stages.push(Stage {
                    index: stages.len(),
                    name: alias.clone(),
                    from: i.clone(),
                    steps: Vec::new(),
                })
            }
            (_, Some(s)) => s.steps.push(i.clone()),
            (Kind::Arg(_), None) => meta_args.push(i.clone()),
            (_, None) => return Err(StageError::BeforeFrom(i.line)),
        }
    }
    if stages.is_empty() {
        return Err(StageError::NoFrom);
    }
    Ok(Plan { meta_args, stages })
}

impl Plan {
    /// The stage a name or index refers to, among those before `before`.
    pub fn find(&self, what: &str, before: usize) -> Option<usize> {
        let w = what.to_ascii_lowercase();
        self.stages[..before]
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(w.as_str()))
            .map(|s| s.index)
            .or_else(|| w.parse::<usize>().ok().filter(|n| *n < before))
    }

    /// The index of `--target` (default the last stage).
    pub fn target(&self, target: Option<&str>) -> Result<usize, StageError> {
        match target {
            None => Ok(self.stages.len() - 1),
            Some(t) => self
                .find(t, self.stages.len())
                .ok_or_else(|| StageError::NoTarget(t.into())),
        }
    }

    /// The stages `target` needs, itself included, in build order. `meta` expands FROM
    /// and `--from` values (docker allows `FROM ${BASE}` and `--from=${STAGE}`).
    pub fn needed(
        &self,
        target: usize,
        escape: char,
        meta: &BTreeMap<String, String>,
    ) -> Result<Vec<usize>, StageError> {
        let get = |k: &str| meta.get(k).cloned();
        let mut need = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(s) = todo.pop() {
            if !need.insert(s) {
                continue;
            }
            let st = &self.stages[s];
            let mut refs = Vec::new();
            if let Kind::From { image, .. } = &st.from.kind {
                refs.push((st.from.line, image.clone(), false));
            }
            for i in &st.steps {
                if let Some(f) = i.flag("from") {
                    refs.push((i.line, f.to_string(), true));
                }
                for m in i.flags_all("mount") {
                    for kv in m.split(',') {
                        if let Some(f) = kv.strip_prefix("from=") {
                            refs.push((i.line, f.to_string(), true));
                        }
                    }
                }
            }
            for (line, r, is_flag) in refs {
                let r = expand_word(&r, escape, &get)
                    .map_err(|source| StageError::Expand { line, source })?;
                // An index names a stage only in --from; `FROM 0` would be an image.
                let found = if is_flag {
                    self.find(&r, s)
                } else {
                    let w = r.to_ascii_lowercase();
                    self.stages[..s]
                        .iter()
                        .rev()
                        .find(|x| x.name.as_deref() == Some(w.as_str()))
                        .map(|x| x.index)
                };
                match found {
                    Some(d) => todo.push(d),
                    None if is_flag && self.find(&r, self.stages.len()).is_some() => {
                        return Err(StageError::Circular { line, from: r })
                    }
                    None => {}
                }
            }
        }
        Ok(need.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::parse::parse;

    fn pl(s: &str) -> Plan {
        plan(&parse(s, "F").unwrap()).unwrap()
    }

    #[test]
    fn splits_and_targets() {
        let p = pl("ARG V=1\nFROM a AS one\nRUN x\nFROM b AS two\nRUN y\nFROM c\n");
        assert_eq!(p.meta_args.len(), 1);
        assert_eq!(p.stages.len(), 3);
        assert_eq!(p.stages[0].steps.len(), 1);
        assert_eq!(p.target(None).unwrap(), 2);
        assert_eq!(p.target(Some("TWO")).unwrap(), 1);
        assert_eq!(p.target(Some("0")).unwrap(), 0);
        assert!(p.target(Some("nope")).is_err());
    }

    #[test]
    fn only_needed_stages() {
        let p = pl("FROM a AS base\nFROM a AS unused\nRUN x\nFROM base AS mid\nCOPY --from=0 / /\nFROM scratch\nCOPY --from=mid /x /x\nRUN --mount=type=bind,from=base,target=/b true\n");
        let m = BTreeMap::new();
        assert_eq!(p.needed(3, '\\', &m).unwrap(), vec![0, 2, 3]);
        // A stage cannot copy from itself.
        let p2 = pl("FROM a AS x\nCOPY --from=x / /\n");
        assert!(matches!(
            p2.needed(0, '\\', &m),
            Err(StageError::Circular { line: 2, .. })
        ));
        let p3 = pl("FROM a AS one\nFROM a AS two\nFROM b\nCOPY --from=1 / /\n");
        assert_eq!(p3.needed(2, '\\', &m).unwrap(), vec![1, 2]);
    }

    #[test]
    fn from_with_meta_args() {
        let p = pl("ARG BASE=one\nFROM a AS one\nFROM ${BASE}\n");
        let mut m = BTreeMap::new();
        m.insert("BASE".to_string(), "one".to_string());
        assert_eq!(p.needed(1, '\\', &m).unwrap(), vec![0, 1]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            plan(&parse("RUN x\nFROM a", "F").unwrap()).unwrap_err(),
            StageError::BeforeFrom(1)
        );
        assert_eq!(
            plan(&parse("ARG x", "F").unwrap()).unwrap_err(),
            StageError::NoFrom
        );
        assert!(matches!(
            plan(&parse("FROM a AS x\nFROM b AS X", "F").unwrap()).unwrap_err(),
            StageError::Duplicate { line: 2, .. }
        ));
    }
}
