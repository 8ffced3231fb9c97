#!/usr/bin/env node
import { main } from '../dist/cmd/flow.js';

main(process.argv.slice(2));
