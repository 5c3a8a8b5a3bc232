"""The pipeline step that starts an environment's verification build after CDK Pipelines deployed it.

The build (stacks/verification.py) lives in the environment's own Stage, in its VPC, because a `CodeBuildStep` always
creates its project in the pipeline stack (aws-cdk-lib 2.275 pipelines codebuild-factory.js) and cannot reach a
private cluster endpoint there. This step adds a CodeBuild action that starts that project by ARN, assuming a role
that exists in the environment's account, also by ARN: a construct reference would cross the Stage boundary, which
CDK refuses (NoCrossStageDependency, core/lib/private/deps.js).
"""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as codepipeline_actions
from aws_cdk import aws_iam as iam
from aws_cdk import pipelines
from constructs import Construct


@jsii.implements(pipelines.ICodePipelineActionFactory)
class RunVerification(pipelines.Step):
    """A CodeBuild action on an existing project, started with an existing (imported, immutable) role.

    The role is passed explicitly so that CodePipeline assumes it instead of generating an action role in a
    `cross-account-support-stack-<account>` that would need its own deploy (aws-codepipeline pipeline.js,
    getRoleFromActionPropsOrGenerateIfCrossAccount). Being immutable, it receives none of the statements
    CodeBuildAction would add: the verification stack gives it `codebuild:StartBuild` and `BatchGetBuilds` itself.
    """

    def __init__(self, id: str, *, input: pipelines.FileSet, project_arn: str, action_role_arn: str) -> None:
        super().__init__(id)
        self.input = input
        self.project_arn = project_arn
        self.action_role_arn = action_role_arn
        # CDK Pipelines orders the step after whatever produces this file set (the source) and passes it along.
        self._add_dependency_file_set(input)

    def produce_action(
        self,
        stage: codepipeline.IStage,
        *,
        action_name: str,
        artifacts: pipelines.ArtifactMap,
        pipeline: pipelines.CodePipeline,
        run_order: jsii.Number,
        scope: Construct,
        stack_outputs_map: pipelines.StackOutputsMap,
        **_: Any,
    ) -> pipelines.CodePipelineActionFactoryResult:
        project = codebuild.Project.from_project_arn(scope, "Project", self.project_arn)
        role = iam.Role.from_role_arn(scope, "ActionRole", self.action_role_arn, mutable=False)
        stage.add_action(
            codepipeline_actions.CodeBuildAction(
                action_name=action_name,
                run_order=run_order,
                project=project,
                # A CodeBuild action needs an input artifact; the repository gives the build `genai-ops` itself.
                input=artifacts.to_code_pipeline(self.input),
                role=role,
            )
        )
        return pipelines.CodePipelineActionFactoryResult(run_orders_consumed=1)
