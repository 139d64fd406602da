import cjs from './react-router.js'

export const { createRedisSessionStorage } = cjs
export default cjs.createRedisSessionStorage
