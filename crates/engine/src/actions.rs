//! Operators' `action run`: the parameters are checked against the action's schema before
//! anything is stored, then the run starts like any other (from the internal story
//! `PACK.ACTION`, whose source event holds the parameters).

use serde_json::{Map, Value};
use switchyard_agents::ParamProblem;

use crate::{Engine, IngestError, Ingested};

/// Why an action run was not started.
#[derive(Debug, thiserror::Error)]
pub enum ActionRunError {
    /// No such action is loaded.
    #[error("no action named `{0}` is loaded")]
    NotFound(String),
    /// The parameters do not fit the action's schema; nothing ran.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ParamProblem>),
    /// The run could not be stored.
    #[error(transparent)]
    Ingest(#[from] IngestError),
}

impl Engine {
    /// Starts a run of action `reference` with `params` (checked, defaults applied) on
    /// behalf of `started_by`. Durable when it returns.
    pub async fn run_action(
        &self,
        reference: &str,
        params: Map<String, Value>,
        started_by: Option<String>,
    ) -> Result<Ingested, ActionRunError> {
        let catalog = self.catalog();
        let (Some(story), Some(action)) = (
            catalog.action_story(reference).cloned(),
            catalog.packs().actions.get(reference),
        ) else {
            return Err(ActionRunError::NotFound(reference.to_string()));
        };
        let params = action
            .parameters
            .resolve(reference, params)
            .map_err(ActionRunError::Invalid)?;
        Ok(self
            .ingest(&story, 0, Value::Object(params), None, started_by)
            .await?)
    }
}
